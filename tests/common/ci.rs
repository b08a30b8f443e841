//! Whether the tests run under CI, where a missing engine or tool is a failure, not a skip.
//! Any non-empty `CI` other than `false`/`0` counts (CI systems set `true`, `1`, `yes`, ...):
//! comparing with `"true"` only would turn every guarded test into a silent pass under `CI=1`.

#![allow(dead_code)]

/// `CI`'s verdict for `value` (the variable's value, `None` when unset).
pub fn is_ci_value(value: Option<&str>) -> bool {
    match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(v) => !(v.is_empty() || v == "false" || v == "0" || v == "no" || v == "off"),
    }
}

/// True under CI (see `is_ci_value`).
pub fn under_ci() -> bool {
    is_ci_value(std::env::var("CI").ok().as_deref())
}
