//! The request body and headers for each [`Format`]: built from an [`Event`]'s fields only.

use super::{Event, Format};

/// The request for `format`: content type, extra headers, body.
pub fn request(ev: &Event, format: Format) -> (&'static str, Vec<(&'static str, String)>, Vec<u8>) {
    let text = ev.summary();
    match format {
        Format::Ntfy => {
            let title = format!("komodo-rotate {} on {}", ev.command, ev.host);
            let (prio, tag) = if ev.is_failure() {
                ("high", "warning")
            } else {
                ("default", "white_check_mark")
            };
            (
                "text/plain; charset=utf-8",
                vec![
                    ("Title", header_safe(&title)),
                    ("Priority", prio.into()),
                    ("Tags", tag.into()),
                ],
                text.into_bytes(),
            )
        }
        Format::Slack => json(&serde_json::json!({ "text": text })),
        Format::Discord => json(&serde_json::json!({ "content": text })),
        Format::Json => json(&serde_json::json!({
            "text": text,
            "content": text,
            "host": ev.host,
            "command": ev.command,
            "outcome": ev.outcome,
            "exit_code": ev.exit_code,
            "steps": ev.steps,
        })),
    }
}

fn json(v: &serde_json::Value) -> (&'static str, Vec<(&'static str, String)>, Vec<u8>) {
    ("application/json", vec![], v.to_string().into_bytes())
}

fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: i32) -> Event {
        Event::new(
            "rotate",
            code,
            vec!["snapshot: done".into(), "change-db: failed".into()],
        )
    }

    #[test]
    fn bodies() {
        let e = ev(4);
        let (ct, h, b) = request(&e, Format::Json);
        assert_eq!(ct, "application/json");
        assert!(h.is_empty());
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["text"], v["content"]);
        assert_eq!(v["exit_code"], 4);
        assert!(v["text"].as_str().unwrap().contains("rolled back"));
        let (_, _, b) = request(&e, Format::Slack);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&b)
                .unwrap()
                .as_object()
                .unwrap()
                .len(),
            1
        );
        let (ct, h, b) = request(&e, Format::Ntfy);
        assert!(ct.starts_with("text/plain"));
        assert!(h.iter().any(|(k, v)| *k == "Priority" && v == "high"));
        assert!(String::from_utf8(b).unwrap().contains("change-db: failed"));
    }
}
