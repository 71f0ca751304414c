//! The checks, one module per group. A check that stands for one of csi-sanity's
//! specs carries that spec's full name, written out here as csi-sanity's JUnit
//! report spells it, and asserts what the spec asserts, no more and no less; the
//! bench's stricter rules are separate checks, marked `[+]`.

mod controller;
mod controller_publish;
mod expansion;
mod group;
mod health;
mod identity;
mod modify;
mod node;
mod snapshot;

use super::context::{CheckFn, CleanupStyle};
pub use super::report::{Group, Spec};

/// One check.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub group: Group,
    /// The bench's name (`Context › It`, csi-sanity's words for its specs).
    pub name: &'static str,
    /// The csi-sanity spec this check stands for (None: a rule the bench adds).
    pub spec: Option<Spec>,
    pub run: CheckFn,
}

impl Check {
    /// One of the specs csi-sanity runs (not its pending one).
    pub fn sanity(&self) -> bool {
        self.spec.is_some_and(|s| !s.pending)
    }

    /// How the check's leftovers are undone: csi-sanity's way for its specs (its
    /// ExpandVolume and ModifyVolume specs have no node client), the bench's own
    /// for the rest.
    pub fn cleanup_style(&self) -> CleanupStyle {
        if !self.sanity() {
            return CleanupStyle::Bench;
        }
        CleanupStyle::Sanity {
            node: !matches!(self.group, Group::Expansion | Group::ModifyVolume),
        }
    }
}

/// Builds a `Vec<Check>` from lines of
/// `sanity "name" = "csi-sanity full name" => path` (one of csi-sanity's specs),
/// `pending "name" = "csi-sanity full name" => path` (csi-sanity's pending spec,
/// run by the bench as its own) or `extra "name" => path` (the bench's own).
macro_rules! checks {
    ($group:expr; $($kind:ident $name:literal $(= $spec:literal)? => $f:path),* $(,)?) => {
        vec![$($crate::conformance::checks::Check {
            group: $group,
            name: $name,
            spec: checks!(@spec $kind $($spec)?),
            run: |cx| Box::pin($f(cx)),
        }),*]
    };
    (@spec sanity $spec:literal) => {
        Some($crate::conformance::checks::Spec { name: $spec, pending: false })
    };
    (@spec pending $spec:literal) => {
        Some($crate::conformance::checks::Spec { name: $spec, pending: true })
    };
    (@spec extra) => { None };
}
pub(crate) use checks;

/// Every check, in run order.
pub fn all() -> Vec<Check> {
    let mut v = identity::checks();
    v.extend(controller::checks());
    v.extend(snapshot::checks());
    v.extend(expansion::checks());
    v.extend(modify::checks());
    v.extend(health::checks());
    v.extend(group::checks());
    v.extend(node::checks());
    v
}

/// Runs `n` copies of `f` at once and returns their results in order.
pub(crate) async fn concurrently<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let b = barrier.clone();
        let fut = f(i);
        set.spawn(async move {
            b.wait().await;
            (i, fut.await)
        });
    }
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        if let Ok((i, v)) = r {
            out[i] = Some(v);
        }
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_spec_has_one_check() {
        let all = all();
        let mut names: Vec<_> = all
            .iter()
            .map(|c| format!("{} › {}", c.group.name(), c.name))
            .collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate check names");
        let mut specs: Vec<_> = all.iter().filter_map(|c| c.spec.map(|s| s.name)).collect();
        specs.sort_unstable();
        let n = specs.len();
        specs.dedup();
        assert_eq!(n, specs.len(), "two checks stand for one csi-sanity spec");
        assert_eq!(n, 103, "csi-sanity v5.6.0 has 103 specs");
        for g in Group::ALL {
            let mapped = all
                .iter()
                .filter(|c| c.group == g && c.spec.is_some())
                .count();
            assert_eq!(mapped, g.sanity_specs(), "{}", g.name());
        }
        assert_eq!(
            all.iter()
                .filter(|c| c.spec.is_some_and(|s| s.pending))
                .count(),
            1
        );
    }
}
