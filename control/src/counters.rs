//! Counters declared once: a struct of plain `u64` fields, each with the stable name
//! `mobiked ctl stats` reports it under. The report walks [`entries`](Counters) of every
//! declared struct, so a counter cannot be counted and forgotten by the report.

/// Declares a counter struct: `name => "report_name"` per field, doc comments allowed.
/// The struct gets `NAMES` (every report name, in declaration order) and `entries()`.
#[macro_export]
macro_rules! named_counters {
    (
        $(#[$sm:meta])*
        pub struct $s:ident {
            $( $(#[$m:meta])* $f:ident => $name:literal, )*
        }
    ) => {
        $(#[$sm])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct $s {
            $( $(#[$m])* pub $f: u64, )*
        }

        impl $s {
            /// The report name of every counter, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name,)*];

            /// Every counter with its report name, zeros included.
            pub fn entries(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$(($name, self.$f),)*].into_iter()
            }
        }
    };
}
