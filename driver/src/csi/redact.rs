//! Helpers used by the generated `Debug` impls of the CSI messages.
//!
//! `build.rs` generates a `Debug` impl for every message that has a field
//! marked `[(csi_secret) = true]`; the impl formats the other fields as the
//! derived impl would, and formats secret fields through the wrappers below so
//! that secret values never reach logs, panics or error messages.

use std::fmt;
use std::marker::PhantomData;

/// The text printed in place of a secret value.
pub const REDACTED: &str = "<redacted>";

/// Prints `"<redacted>"` in place of a secret value.
#[derive(Clone, Copy)]
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(REDACTED, f)
    }
}

/// Prints a secret map with its keys (sorted, so the output is stable) and
/// `"<redacted>"` for every value.
pub struct RedactedMap<'a, M>(pub &'a M);

impl<'a, M, K, V> fmt::Debug for RedactedMap<'a, M>
where
    &'a M: IntoIterator<Item = (&'a K, &'a V)>,
    K: fmt::Debug + Ord + 'a,
    V: 'a,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&K> = self.0.into_iter().map(|(k, _)| k).collect();
        keys.sort();
        f.debug_map()
            .entries(keys.into_iter().map(|k| (k, Redacted)))
            .finish()
    }
}

/// Prints a repeated secret field as a list of `"<redacted>"` of its length.
pub struct RedactedList(pub usize);

impl fmt::Debug for RedactedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(std::iter::repeat_n(Redacted, self.0))
            .finish()
    }
}

/// Prints an optional secret field as `Some("<redacted>")` or `None`.
pub struct RedactedOption(pub bool);

impl fmt::Debug for RedactedOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 {
            f.debug_tuple("Some").field(&Redacted).finish()
        } else {
            f.write_str("None")
        }
    }
}

/// Prints an `i32` enum field by its variant name when the value is known,
/// and as the number otherwise, as prost's derived `Debug` does.
pub struct EnumValue<E>(i32, PhantomData<E>);

impl<E> EnumValue<E> {
    /// Wraps the raw value of an enum field.
    pub fn new(value: i32) -> Self {
        Self(value, PhantomData)
    }
}

impl<E> fmt::Debug for EnumValue<E>
where
    E: TryFrom<i32> + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match E::try_from(self.0) {
            Ok(value) => value.fmt(f),
            Err(_) => self.0.fmt(f),
        }
    }
}

/// Prints a repeated `i32` enum field element by element like [`EnumValue`].
pub struct EnumList<'a, E>(&'a [i32], PhantomData<E>);

impl<'a, E> EnumList<'a, E> {
    /// Wraps the raw values of a repeated enum field.
    pub fn new(values: &'a [i32]) -> Self {
        Self(values, PhantomData)
    }
}

impl<E> fmt::Debug for EnumList<'_, E>
where
    E: TryFrom<i32> + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|v| EnumValue::<E>::new(*v)))
            .finish()
    }
}
