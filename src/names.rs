//! Names of the small enums that cross the API boundary (modes, precisions,
//! block roles): one table per enum gives `as_str`, `Display`, `FromStr`
//! and, for the CLI, clap's `ValueEnum`.

/// `named_enum!(Mode { Inspect = "inspect", Fast = "fast" });`
#[macro_export]
macro_rules! named_enum {
    ($t:ident { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$($t::$v),*];
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),* }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<$t> {
                $t::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<String> = $t::ALL.iter().map(|v| format!("'{}'", v.as_str())).collect();
                    $crate::Error::of($crate::error::ErrorKind::BadInput, format!("unknown {} `{s}`: use {}", $crate::names::lower(stringify!($t)), names.join(" or ")))
                })
            }
        }
        #[cfg(feature = "cli")]
        impl clap::ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                $t::ALL
            }
            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.as_str()))
            }
        }
    };
}

/// `BlockRole` → `block role`, for messages.
pub fn lower(type_name: &str) -> String {
    let mut out = String::new();
    for (i, c) in type_name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.extend(c.to_lowercase());
    }
    out
}
