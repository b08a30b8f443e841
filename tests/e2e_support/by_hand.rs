//! Hand operations the e2e tests play as an operator would: a `sops set` with the real Go sops,
//! a shorter health timeout in the stack's config.

use komodo_rotate::secret::Secret;
use komodo_testcontainers::stack::Stack;

/// A hand edit with the real Go sops: `sops set` of `key` in compose.env (value on stdin).
pub fn sops_set_by_hand(s: &Stack, key: &str, value: &Secret) {
    super::sops_cli::set_at(&s.compose_env(), &s.age_key(), key, value.expose());
}

/// The stack's config with a shorter health timeout: a crash-looping core is waited out once
/// per look, and these cases look at one on purpose.
pub fn shorten_health_timeout(s: &Stack) {
    let p = s.config();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains("timeout = \"60s\""), "{text}");
    std::fs::write(&p, text.replace("timeout = \"60s\"", "timeout = \"20s\"")).unwrap();
}
