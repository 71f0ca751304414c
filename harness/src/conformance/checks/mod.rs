//! The checks, one module per group. Names of csi-sanity's specs are theirs
//! (`Context › It`), so a result can be matched with csi-sanity's output.

mod controller;
mod expansion;
mod group;
mod identity;
mod modify;
mod node;
mod snapshot;

use super::context::CheckFn;
pub use super::report::Group;

/// One check.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub group: Group,
    pub name: &'static str,
    /// One of csi-sanity's specs (false: a rule the bench adds).
    pub sanity: bool,
    pub run: CheckFn,
}

/// Builds a `Vec<Check>`: `sanity "name" => path` or `extra "name" => path`.
macro_rules! checks {
    ($group:expr; $($kind:ident $name:literal => $f:path),* $(,)?) => {
        vec![$($crate::conformance::checks::Check {
            group: $group,
            name: $name,
            sanity: checks!(@kind $kind),
            run: |cx| Box::pin($f(cx)),
        }),*]
    };
    (@kind sanity) => { true };
    (@kind extra) => { false };
}
pub(crate) use checks;

/// Every check, in run order.
pub fn all() -> Vec<Check> {
    let mut v = identity::checks();
    v.extend(controller::checks());
    v.extend(snapshot::checks());
    v.extend(expansion::checks());
    v.extend(modify::checks());
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
    fn names_are_unique_and_sanity_counts_fit() {
        let all = all();
        let mut names: Vec<_> = all
            .iter()
            .map(|c| format!("{} › {}", c.group.name(), c.name))
            .collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate check names");
        for g in Group::ALL {
            let sanity = all.iter().filter(|c| c.group == g && c.sanity).count();
            assert!(
                sanity <= g.sanity_specs(),
                "{}: {sanity} sanity checks > {}",
                g.name(),
                g.sanity_specs()
            );
        }
    }
}
