//! Topic → NATS subject: how a topic and a wildcard pattern become subjects under the
//! namespace, whatever the engine's separator and whatever bytes a topic holds.
//!
//! A subject is the namespace's tokens, then the topic's tokens (split by the engine's
//! separator), joined by `.`. Each topic token is escaped so that it is one valid NATS
//! token, and so that two different topics never share a subject:
//!
//! | byte in a topic token | in the subject token |
//! |---|---|
//! | `.`, `*`, `>`, `%`, space and every other ASCII whitespace or control byte (`0x00`–`0x20`, `0x7F`) | `%` and two upper-case hex digits (`.` → `%2E`, space → `%20`) |
//! | anything else (UTF-8 included) | itself |
//! | an empty token (`a..b` under `.`) | `%` alone |
//!
//! So with the default separator `.` a topic `room.42` is the subject `NS.room.42`, and
//! with separator `/` a topic `prices/EUR.USD` is `NS.prices.EUR%2EUSD`. A pattern maps
//! token by token the same way, its `*` and `>` tokens becoming NATS's own: the NATS
//! server then matches exactly the topics the engine's pattern matches (both match
//! whole tokens, `*` one, `>` one or more), and a client that matches a topic only
//! through a pattern gets remote frames through one wildcard subscription.
//!
//! Nothing is refused: every topic the engine accepts has a subject. Only the namespace
//! is checked (it is written as is): one or more non-empty tokens separated by `.`,
//! without whitespace, control bytes, `*`, `>` or `%`.
//!
//! # The control subject
//!
//! Messages for every node of the namespace, whatever topics it serves (presence:
//! deltas, states, heartbeats, requests, goodbyes), go to `NAMESPACE.%c`, which every
//! node subscribes to. No topic maps to it: in a topic's subject a `%` is either a whole
//! token (an empty topic token) or followed by two upper-case hex digits, and `c` is
//! neither. A wildcard pattern's subject can match it (`NAMESPACE.*`, `NAMESPACE.>`):
//! what arrives on the control subject through a pattern's subscription is skipped
//! there, and read once, through the control subscription.

use std::fmt::Write as _;

/// Maps topics and patterns of one engine to subjects of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    /// The namespace, then `.`.
    prefix: String,
    /// The engine's token separator.
    separator: char,
}

/// The last token of the control subject: no topic token is escaped to it (a `%` in a
/// topic's subject is a token alone or followed by two upper-case hex digits).
const CONTROL_TOKEN: &str = "%c";

/// Whether `byte` is escaped in a subject token.
fn escaped(byte: u8) -> bool {
    matches!(byte, b'.' | b'*' | b'>' | b'%' | 0x00..=0x20 | 0x7F)
}

/// Whether `namespace` can be written into subjects as is.
pub(crate) fn valid_namespace(namespace: &str) -> bool {
    !namespace.is_empty()
        && namespace
            .split('.')
            .all(|token| !token.is_empty() && !token.bytes().any(escaped))
}

impl Subjects {
    /// `namespace` must pass [`valid_namespace`].
    pub(crate) fn new(namespace: &str, separator: char) -> Self {
        Self {
            prefix: format!("{namespace}."),
            separator,
        }
    }

    /// The control subject: every node of the namespace subscribes to it, and no
    /// topic's subject is it.
    pub(crate) fn control(&self) -> String {
        format!("{}{CONTROL_TOKEN}", self.prefix)
    }

    /// The subject of `topic`.
    pub(crate) fn topic(&self, topic: &str) -> String {
        let mut subject = String::with_capacity(self.prefix.len() + topic.len() + 8);
        subject.push_str(&self.prefix);
        for (i, token) in topic.split(self.separator).enumerate() {
            if i > 0 {
                subject.push('.');
            }
            push_token(&mut subject, token);
        }
        subject
    }

    /// The subject of a wildcard `pattern` (as the engine parsed it: `*` and `>` only as
    /// whole tokens).
    pub(crate) fn pattern(&self, pattern: &str) -> String {
        let mut subject = String::with_capacity(self.prefix.len() + pattern.len() + 8);
        subject.push_str(&self.prefix);
        for (i, token) in pattern.split(self.separator).enumerate() {
            if i > 0 {
                subject.push('.');
            }
            match token {
                "*" | ">" => subject.push_str(token),
                literal => push_token(&mut subject, literal),
            }
        }
        subject
    }

    /// Whether `subject` is `topic`'s subject (without building it).
    pub(crate) fn is_subject_of(&self, subject: &str, topic: &str) -> bool {
        let Some(mut rest) = subject.strip_prefix(self.prefix.as_str()) else {
            return false;
        };
        let mut token_buf = String::new();
        for (i, token) in topic.split(self.separator).enumerate() {
            if i > 0 {
                let Some(after) = rest.strip_prefix('.') else {
                    return false;
                };
                rest = after;
            }
            token_buf.clear();
            push_token(&mut token_buf, token);
            let Some(after) = rest.strip_prefix(token_buf.as_str()) else {
                return false;
            };
            rest = after;
        }
        rest.is_empty()
    }
}

/// Appends `token` escaped as one subject token.
fn push_token(subject: &mut String, token: &str) {
    if token.is_empty() {
        subject.push('%');
        return;
    }
    if !token.bytes().any(escaped) {
        subject.push_str(token);
        return;
    }
    for c in token.chars() {
        if c.is_ascii() && escaped(c as u8) {
            let _ = write!(subject, "%{:02X}", c as u8);
        } else {
            subject.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_token_by_token_and_escape_what_nats_forbids() {
        let dots = Subjects::new("chat", '.');
        assert_eq!(dots.topic("room.42"), "chat.room.42");
        assert_eq!(dots.topic("a b\tc"), "chat.a%20b%09c");
        assert_eq!(dots.topic("a..b"), "chat.a.%.b");
        assert_eq!(dots.topic("100%"), "chat.100%25");
        assert_eq!(dots.topic("x*y.>z"), "chat.x%2Ay.%3Ez");
        assert_eq!(dots.topic("ünï.кот"), "chat.ünï.кот");
        let slashes = Subjects::new("a.b", '/');
        assert_eq!(slashes.topic("prices/EUR.USD"), "a.b.prices.EUR%2EUSD");
        assert_eq!(slashes.pattern("prices/*"), "a.b.prices.*");
        assert_eq!(slashes.pattern("x.y/>"), "a.b.x%2Ey.>");
    }

    #[test]
    fn distinct_topics_get_distinct_subjects() {
        let s = Subjects::new("n", '/');
        let topics = [
            "a.b", "a/b", "a%2Eb", "a%b", "a//b", "a/%/b", "a /b", "a%20/b",
        ];
        let subjects: std::collections::HashSet<String> =
            topics.iter().map(|t| s.topic(t)).collect();
        assert_eq!(subjects.len(), topics.len(), "{subjects:?}");
    }

    #[test]
    fn a_subject_is_recognised_as_its_topics_only() {
        let s = Subjects::new("n", '/');
        for topic in ["a", "a/b", "a.b", "a b/c", ""] {
            assert!(s.is_subject_of(&s.topic(topic), topic), "{topic:?}");
        }
        assert!(!s.is_subject_of("n.a.b", "a.b"));
        assert!(!s.is_subject_of("n.a.b.c", "a/b"));
        assert!(!s.is_subject_of("m.a", "a"));
        assert!(!s.is_subject_of("n.a", "a/b"));
    }

    /// Every topic over an alphabet of the bytes that matter (`%`, `c`, hex digits, the
    /// separators, a space, an escaped byte) up to 5 characters, under both separators:
    /// none maps to the control subject, and the control subject is no topic's.
    #[test]
    fn no_topic_maps_to_the_control_subject() {
        let alphabet = ['%', 'c', 'C', '2', '5', '.', '/', ' ', '*', 'x'];
        for separator in ['.', '/'] {
            let s = Subjects::new("n", separator);
            let control = s.control();
            assert_eq!(control, "n.%c");
            let mut topics = vec![String::new()];
            let mut checked = 0;
            for _ in 0..5 {
                let mut longer = Vec::with_capacity(topics.len() * alphabet.len());
                for topic in &topics {
                    for c in alphabet {
                        let mut t = topic.clone();
                        t.push(c);
                        assert_ne!(s.topic(&t), control, "{t:?} under {separator:?}");
                        assert!(!s.is_subject_of(&control, &t), "{t:?}");
                        checked += 1;
                        longer.push(t);
                    }
                }
                topics = longer;
            }
            assert!(checked > 100_000);
            // The claim the docs make, on the mapping's every token.
            for topic in ["%c", "a.%c", "%", "%%c", "c%", "%2", "%25c"] {
                for token in s.topic(topic)["n.".len()..].split('.') {
                    let mut rest = token;
                    if token == "%" {
                        continue;
                    }
                    while let Some(at) = rest.find('%') {
                        let hex = &rest[at + 1..];
                        assert!(
                            hex.len() >= 2
                                && hex
                                    .bytes()
                                    .take(2)
                                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                            "{topic:?} → {token:?}"
                        );
                        rest = &hex[2..];
                    }
                }
            }
        }
    }

    #[test]
    fn namespaces_are_checked_not_escaped() {
        assert!(valid_namespace("chat"));
        assert!(valid_namespace("prod.chat"));
        for bad in ["", ".", "a..b", "a.", "a b", "a.*", ">", "50%"] {
            assert!(!valid_namespace(bad), "{bad:?}");
        }
    }
}
