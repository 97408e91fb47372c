//! Wildcard subscriptions: parsing and matching one pattern.
//!
//! NATS semantics. A topic is a sequence of tokens split by the engine's separator
//! (`.` by default, [`Builder::separator`](crate::Builder::separator)). In a
//! subscription, a token that is exactly `*` matches any one token, and a last token
//! that is exactly `>` matches one or more tokens. So with `.`:
//!
//! | pattern | matches | does not match |
//! |---|---|---|
//! | `foo.*` | `foo.bar` | `foo`, `foo.bar.baz` |
//! | `foo.>` | `foo.bar`, `foo.bar.baz` | `foo` |
//! | `*.*` | `a.b` | `a`, `a.b.c` |
//! | `>` | every topic | — |
//!
//! A subscription with no wildcard token is an exact topic, as before (`foo*` is an exact
//! topic: `*` counts only as a whole token). A pattern may not have an empty token
//! (`foo..*`) or a `>` before its last token (`foo.>.bar`): those are
//! [`PatternError`]s.
//!
//! How patterns reach broadcasts is in [`pattern_index`](crate::engine::pattern_index) (topics
//! nobody subscribed to by name) and in the writer (topics that exist get their pattern
//! subscribers in their own subscriber lists, so broadcasting to them never matches).

use std::fmt;

use crate::vocab::error::PatternError;

/// The default token separator.
pub(crate) const DEFAULT_SEPARATOR: char = '.';

/// One token of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// Matches this exact token.
    Literal(Box<str>),
    /// `*`: any one token.
    One,
    /// `>` (last only): one or more tokens.
    Rest,
}

/// A parsed wildcard subscription.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// As the client wrote it: unsubscribing takes the same string.
    text: std::sync::Arc<str>,
    tokens: Box<[Token]>,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

/// Whether `subscription` is a pattern (has a `*` or `>` token) rather than a topic.
/// Cheap for the common case: a name with neither byte is not split at all.
pub(crate) fn is_pattern(subscription: &str, separator: char) -> bool {
    subscription.bytes().any(|b| b == b'*' || b == b'>')
        && subscription
            .split(separator)
            .any(|token| token == "*" || token == ">")
}

impl Pattern {
    /// Parses `text` as a pattern. Call only when [`is_pattern`] says it is one.
    pub(crate) fn parse(text: std::sync::Arc<str>, separator: char) -> Result<Self, PatternError> {
        let parts: Vec<&str> = text.split(separator).collect();
        let last = parts.len() - 1;
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            tokens.push(match *part {
                "" => return Err(PatternError::EmptyToken),
                "*" => Token::One,
                ">" if i == last => Token::Rest,
                ">" => return Err(PatternError::RestNotLast),
                literal => Token::Literal(literal.into()),
            });
        }
        Ok(Self {
            text,
            tokens: tokens.into_boxed_slice(),
        })
    }

    /// The pattern as written.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Whether the topic `name` matches.
    pub(crate) fn matches(&self, name: &str, separator: char) -> bool {
        let mut topic = name.split(separator);
        for token in self.tokens.iter() {
            match (token, topic.next()) {
                (_, None) => return false,
                (Token::Rest, Some(_)) => return true,
                (Token::One, Some(_)) => {}
                (Token::Literal(literal), Some(part)) if **literal == *part => {}
                (Token::Literal(_), Some(_)) => return false,
            }
        }
        topic.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        assert!(is_pattern(text, '.'), "{text} is not a pattern");
        Pattern::parse(text.into(), '.').unwrap()
    }

    /// The matching cases of NATS's sublist tests (server/sublist_test.go:
    /// TestSublistWildcards…, TestSublistMatchLiterals), as a table.
    #[test]
    fn matching_follows_nats() {
        let cases: &[(&str, &str, bool)] = &[
            ("foo.*", "foo.bar", true),
            ("foo.*", "foo", false),
            ("foo.*", "foo.bar.baz", false),
            ("foo.>", "foo.bar", true),
            ("foo.>", "foo.bar.baz", true),
            ("foo.>", "foo", false),
            ("*.*", "a.b", true),
            ("*.*", "a", false),
            ("*.*", "a.b.c", false),
            (">", "a", true),
            (">", "a.b.c", true),
            ("*", "a", true),
            ("*", "a.b", false),
            ("*.bar", "foo.bar", true),
            ("*.bar", "foo.baz", false),
            ("foo.*.baz", "foo.bar.baz", true),
            ("foo.*.baz", "foo.bar.bar", false),
            ("foo.*.>", "foo.bar", false),
            ("foo.*.>", "foo.bar.baz", true),
            ("foo.*.>", "foo.bar.baz.qux", true),
            ("*.>", "a.b", true),
            ("*.>", "a", false),
            ("a.*.c.>", "a.b.c.d", true),
            ("a.*.c.>", "a.b.c", false),
            ("a.*.c.>", "a.b.x.d", false),
            // A wildcard must be a whole token to be one.
            ("foo.*", "foo.b*", true),
        ];
        for &(p, topic, expected) in cases {
            assert_eq!(pattern(p).matches(topic, '.'), expected, "{p} vs {topic}");
        }
    }

    #[test]
    fn wildcards_only_count_as_whole_tokens() {
        assert!(!is_pattern("foo*", '.'));
        assert!(!is_pattern("foo.b>r", '.'));
        assert!(!is_pattern("room/rust", '.'));
        assert!(is_pattern("room/*", '/'));
        assert!(!is_pattern("room/*", '.'));
    }

    #[test]
    fn invalid_patterns_are_typed_errors() {
        for (text, error) in [
            ("foo.>.bar", PatternError::RestNotLast),
            (">.foo", PatternError::RestNotLast),
            ("foo..*", PatternError::EmptyToken),
            ("*.", PatternError::EmptyToken),
            (".>", PatternError::EmptyToken),
        ] {
            assert_eq!(Pattern::parse(text.into(), '.'), Err(error), "{text}");
        }
    }

    #[test]
    fn another_separator() {
        let p = Pattern::parse("room/*/msgs".into(), '/').unwrap();
        assert!(p.matches("room/rust/msgs", '/'));
        assert!(!p.matches("room.rust.msgs", '/'));
    }
}
