//! The cause of a failure, kept as an error value rather than flattened into a string:
//! errors carry it as their `#[source]`, and [`chain`] writes a failure with every cause
//! under it (the gRPC status message, log lines). A leaf: it imports nothing of the crate.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A shared, cloneable error value (errors that carry it stay `Clone` and comparable).
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync>);

impl Cause {
    /// Keeps `e` as a cause.
    pub fn new(e: impl Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// Two causes are the same when they read the same (errors have no equality of their
/// own; tests compare failures).
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

/// `e` and every cause under it, joined by `": "`. A cause whose text its error already
/// shows (thiserror's `"{context}: {source}"`) is not repeated.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let s = cause.to_string();
        if !s.is_empty() && !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Cause);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: {0}")]
    struct Shows(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Outer(Cause::new(Shows(io)));
        // "middle: refused" already shows the io error: it is not repeated.
        assert_eq!(chain(&e), "outer: middle: refused");
        let a = Cause::new(std::io::Error::other("x"));
        assert_eq!(a, a.clone());
        assert_ne!(a, Cause::new(std::io::Error::other("y")));
    }
}
