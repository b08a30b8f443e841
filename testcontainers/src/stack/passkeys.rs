//! How komodo-periphery v1 reads its passkey list (research/komodo.md §1.4, §2.3), for the
//! periphery stand-in: `PERIPHERY_PASSKEYS` is split on `,` by envy WITHOUT trimming (so
//! `old, new` holds ` new` with a leading space, which core's `new` does not match), while
//! `PERIPHERY_PASSKEYS_FILE` items are each trimmed. Empty items are dropped, so an empty
//! variable means "no passkeys" (periphery then accepts every caller).

use komodo_rotate::secret::Secret;

/// Items of `PERIPHERY_PASSKEYS` as read from the environment: split on `,`, never trimmed.
pub fn from_env_value(value: &str) -> Vec<Secret> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| Secret::new(s.to_string()))
        .collect()
}

/// Items of the file named by `PERIPHERY_PASSKEYS_FILE`: split on `,`, each item trimmed.
pub fn from_file_text(text: &str) -> Vec<Secret> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Secret::new(s.to_string()))
        .collect()
}

/// Whether `given` (the `authorization` header core sent) is one of `keys`; constant time per
/// item.
pub fn accepts(keys: &[Secret], given: &str) -> bool {
    let given = Secret::new(given.to_string());
    keys.iter().any(|k| k.ct_eq(&given))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_items_keep_their_spaces_and_file_items_are_trimmed() {
        let env = from_env_value("old, new");
        assert!(accepts(&env, "old"));
        assert!(
            !accepts(&env, "new"),
            "envy does not trim: the item is ' new'"
        );
        assert!(accepts(&env, " new"));
        let file = from_file_text("old, new\n");
        assert!(accepts(&file, "old"));
        assert!(accepts(&file, "new"));
        assert!(!accepts(&file, " new"));
    }

    #[test]
    fn a_list_without_spaces_accepts_each_item_and_nothing_else() {
        let keys = from_env_value("old,new");
        assert_eq!(keys.len(), 2);
        assert!(accepts(&keys, "old") && accepts(&keys, "new"));
        assert!(!accepts(&keys, "old,new"));
        assert!(!accepts(&keys, ""));
        assert!(from_env_value("").is_empty());
        assert!(from_env_value(",,").is_empty());
    }
}
