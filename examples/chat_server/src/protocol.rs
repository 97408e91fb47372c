//! What clients and the server say to each other: the JSON commands a client sends, the
//! JSON events in the Push frames the server sends, the serialiser that writes them,
//! and the checks on untrusted input.
//!
//! Everything here is plain data and pure functions; the connection task
//! ([`crate::connection`]) applies the commands.

use std::collections::BTreeMap;

use bytes::{BufMut, BytesMut};
use fanout::transport::{SerialiseError, Serialiser};
use serde::{Deserialize, Serialize};

/// Longest room name accepted, in bytes.
pub const MAX_ROOM_LEN: usize = 64;

/// Longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// The private room: only moderators may join it (see [`crate::authorize`]).
pub const STAFF_ROOM: &str = "staff";

/// What a moderator's console subscribes to: every room.
pub const CONSOLE_PATTERN: &str = "room.>";

/// How many characters of untrusted input an error reply quotes, at most.
pub const PREVIEW_CHARS: usize = 32;

/// A room member as `members` and `console` list it.
#[derive(Debug, Serialize)]
pub struct MemberInfo {
    /// Its engine's node id, in decimal (`"0"` on a server without `--redis`): with the
    /// client id, what names a member on every bridged server.
    pub node: String,
    /// Its presence id: the client id Presence frames carry.
    pub client: u64,
    /// Its display name (the presence metadata).
    pub name: String,
}

/// Why a member left a room, as the `left` event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// It sent `{"leave": ...}`.
    Left,
    /// It closed its connection (a close frame).
    Closed,
    /// Its connection was lost (reset, or closed without a close frame).
    Lost,
    /// It stopped reading: its frames were not written within the write timeout, its
    /// unsent backlog passed the limit, or the engine cut it off for overflowing its
    /// queue.
    TooSlow,
    /// Nothing was heard from it (not even a pong) for the idle timeout.
    Idle,
    /// It broke the protocol: a message over the size limit, a bad frame, invalid
    /// UTF-8, a binary message.
    Refused,
    /// The server is shutting down.
    Shutdown,
}

/// What the server pushes to clients: the JSON payload of every Push frame.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The first frame on a connection.
    Welcome {
        /// Your id in `joined`, `left` and `message` events.
        client: u64,
        /// Your id in Presence frames and member lists (equal to `client` on a lone
        /// server; engine-local with `--redis`).
        presence_id: u64,
        /// Your server's node id in Presence frames and member lists, in decimal
        /// (`"0"` without `--redis`).
        presence_node: String,
        /// Your display name until you send `{"name": ...}`.
        name: String,
        /// The largest message the server accepts, in bytes.
        max_message: usize,
    },
    /// Your display name is now `name`.
    Name { name: String },
    /// You joined `room`; these were its members then (you included).
    Members {
        room: String,
        members: Vec<MemberInfo>,
    },
    /// Your moderator console opened (subscribed to `pattern`); every room's members.
    Console {
        pattern: String,
        rooms: BTreeMap<String, Vec<MemberInfo>>,
    },
    /// `client` (`name`) joined `room`, which now has `members` members.
    Joined {
        room: String,
        client: u64,
        name: String,
        members: usize,
    },
    /// You asked to join `room` but were in it already: nothing changed, and nobody
    /// else was told.
    AlreadyJoined { room: String },
    /// `client` (`name`) left `room` (or its connection ended, see `reason`), which now
    /// has `members` members.
    Left {
        room: String,
        client: u64,
        name: String,
        members: usize,
        reason: LeaveReason,
    },
    /// `from` (`name`) said `text` in `room`.
    Message {
        room: String,
        from: u64,
        name: String,
        text: String,
    },
    /// The periodic server time. `sent_us` is when the push was broadcast, in
    /// microseconds since the Unix epoch: a client on the same host subtracts it from
    /// its own clock to measure push → receipt latency (what `chat_load` does).
    Time {
        unix_ms: u64,
        utc: String,
        sent_us: u64,
    },
    /// The client's last command was refused (nothing changed).
    Error { error: String },
}

/// What clients send, as JSON text messages. `untagged`: the fields present decide.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// `{"say":"rust","text":"hi"}`
    Say { say: String, text: String },
    /// `{"join":"rust"}`
    Join { join: String },
    /// `{"leave":"rust"}`
    Leave { leave: String },
    /// `{"name":"Alice"}`
    Name { name: String },
    /// `{"moderate":"TOKEN"}`
    Moderate { moderate: String },
}

/// The help an unparseable command gets.
pub const COMMAND_HELP: &str = r#"try {"name":"Alice"}, {"join":"rust"}, {"leave":"rust"}, {"say":"rust","text":"hi"} or {"moderate":"TOKEN"}"#;

impl Command {
    /// Parses one text message. The error quotes at most [`PREVIEW_CHARS`] characters
    /// of it, escaped.
    pub fn parse(text: &str) -> Result<Command, String> {
        serde_json::from_str(text)
            .map_err(|_| format!("not a command: {} ({COMMAND_HELP})", preview(text)))
    }
}

/// A [`Serialiser`] writing any `serde` type as JSON straight into the frame's buffer.
/// The engine runs it once per broadcast, however many clients are in the room.
pub struct Json;

impl<T: Serialize> Serialiser<T> for Json {
    fn serialise(&self, message: &T, out: &mut BytesMut) -> Result<(), SerialiseError> {
        serde_json::to_writer(out.writer(), message).map_err(SerialiseError::new)
    }
}

/// Room NAME is topic `room.NAME`: `room.>` covers every room, and a room called
/// `time` is not the clock topic.
pub fn room_topic(room: &str) -> String {
    format!("room.{room}")
}

/// 1 to [`MAX_ROOM_LEN`] bytes, none of them a topic separator, a wildcard, or a
/// character [`unfit_for_names`] (a control or format character).
pub fn check_room_name(room: &str) -> Result<(), String> {
    if let Some(c) = room.chars().find(|&c| unfit_for_names(c)) {
        return Err(format!("a room name may not contain {}", describe(c)));
    }
    if room.is_empty() || room.len() > MAX_ROOM_LEN || room.contains(['.', '*', '>']) {
        return Err(format!(
            "a room name is 1 to {MAX_ROOM_LEN} bytes, without '.', '*' or '>'"
        ));
    }
    Ok(())
}

/// 1 to [`MAX_NAME_CHARS`] characters, no leading or trailing space, none of them
/// [`unfit_for_names`] (a control or format character).
pub fn check_display_name(name: &str) -> Result<(), String> {
    if let Some(c) = name.chars().find(|&c| unfit_for_names(c)) {
        return Err(format!("a name may not contain {}", describe(c)));
    }
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.trim() != name {
        return Err(format!(
            "a name is 1 to {MAX_NAME_CHARS} characters, without leading or trailing spaces"
        ));
    }
    Ok(())
}

/// Whether `c` is refused in display names and room names: a control character
/// (general category Cc: C0, DEL, C1), a format character (Cf, [`FORMAT_CHARACTERS`]),
/// or the line and paragraph separators U+2028 and U+2029 (Zl, Zp).
///
/// A name is shown inside other people's lines (`Alice: hi`, `Alice joined #rust`) and
/// member lists. A format character there is invisible, and some rewrite what follows
/// it: U+202E RIGHT-TO-LEFT OVERRIDE in a name reversed the rest of every log line that
/// showed it, for every reader; zero-width characters make two different names look
/// the same. Chat text may carry them (a right-to-left mark is ordinary punctuation in
/// Arabic or Hebrew text); the page isolates names and text from each other instead
/// (`<bdi>`).
///
/// The price: a name cannot use U+200C ZERO WIDTH NON-JOINER (which Persian spelling
/// uses) or U+200D ZERO WIDTH JOINER (emoji sequences such as a family).
pub fn unfit_for_names(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_format(c)
}

/// Whether `c` is a format character (general category Cf): a binary search of
/// [`FORMAT_CHARACTERS`].
pub fn is_format(c: char) -> bool {
    FORMAT_CHARACTERS
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Every format character (general category Cf) as of Unicode 15.1, as inclusive,
/// sorted ranges: 170 code points in 21 ranges. Written out here rather than taken from
/// a Unicode tables crate, for one check on short strings.
///
/// Source: the Unicode Character Database, `DerivedGeneralCategory.txt`, lines with
/// `; Cf`. Python's `unicodedata` (Unicode 14.0) lists the same ranges but the Egyptian
/// hieroglyph controls U+13439..U+1343F, which Unicode 15.0 added. A new Unicode
/// version may add more; a test checks the table is sorted and counts 170.
pub const FORMAT_CHARACTERS: [(char, char); 21] = [
    ('\u{00AD}', '\u{00AD}'),   // SOFT HYPHEN
    ('\u{0600}', '\u{0605}'),   // ARABIC NUMBER SIGN..ARABIC NUMBER MARK ABOVE
    ('\u{061C}', '\u{061C}'),   // ARABIC LETTER MARK
    ('\u{06DD}', '\u{06DD}'),   // ARABIC END OF AYAH
    ('\u{070F}', '\u{070F}'),   // SYRIAC ABBREVIATION MARK
    ('\u{0890}', '\u{0891}'),   // ARABIC POUND MARK ABOVE..ARABIC PIASTRE MARK ABOVE
    ('\u{08E2}', '\u{08E2}'),   // ARABIC DISPUTED END OF AYAH
    ('\u{180E}', '\u{180E}'),   // MONGOLIAN VOWEL SEPARATOR
    ('\u{200B}', '\u{200F}'),   // ZERO WIDTH SPACE..RIGHT-TO-LEFT MARK
    ('\u{202A}', '\u{202E}'),   // LEFT-TO-RIGHT EMBEDDING..RIGHT-TO-LEFT OVERRIDE
    ('\u{2060}', '\u{2064}'),   // WORD JOINER..INVISIBLE PLUS
    ('\u{2066}', '\u{206F}'),   // LEFT-TO-RIGHT ISOLATE..NOMINAL DIGIT SHAPES
    ('\u{FEFF}', '\u{FEFF}'),   // ZERO WIDTH NO-BREAK SPACE (byte order mark)
    ('\u{FFF9}', '\u{FFFB}'),   // INTERLINEAR ANNOTATION ANCHOR..TERMINATOR
    ('\u{110BD}', '\u{110BD}'), // KAITHI NUMBER SIGN
    ('\u{110CD}', '\u{110CD}'), // KAITHI NUMBER SIGN ABOVE
    ('\u{13430}', '\u{1343F}'), // EGYPTIAN HIEROGLYPH VERTICAL JOINER..END WALLED ENCLOSURE
    ('\u{1BCA0}', '\u{1BCA3}'), // SHORTHAND FORMAT LETTER OVERLAP..UP STEP
    ('\u{1D173}', '\u{1D17A}'), // MUSICAL SYMBOL BEGIN BEAM..END PHRASE
    ('\u{E0001}', '\u{E0001}'), // LANGUAGE TAG
    ('\u{E0020}', '\u{E007F}'), // TAG SPACE..CANCEL TAG
];

/// Names the refused character `c` in an error reply, and says why.
fn describe(c: char) -> String {
    format!(
        "U+{:04X}: control and format characters (bidi overrides, zero-width and \
         invisible characters, line breaks) are refused in names",
        u32::from(c)
    )
}

/// Chat text: no control characters but newline and tab. (Its size is bounded by the
/// message size limit, which the WebSocket layer enforces before it is even parsed.)
pub fn check_text(text: &str) -> Result<(), String> {
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(
            "chat text may not contain control characters (newline and tab are fine)".into(),
        );
    }
    Ok(())
}

/// At most [`PREVIEW_CHARS`] characters of untrusted input, quoted, with control and
/// other unprintable characters escaped (`"\u{1}"`), for error messages: an error reply
/// is a few hundred bytes whatever the input was.
pub fn preview(input: &str) -> String {
    let mut shown: String = input.chars().take(PREVIEW_CHARS).collect();
    let cut = input.chars().nth(PREVIEW_CHARS).is_some();
    shown = format!("{shown:?}"); // Debug escapes quotes, backslashes and unprintables
    if cut {
        shown.push('…');
    }
    shown
}

/// Compares a presented token with the expected one without stopping at the first
/// differing byte (the time it takes reveals only the lengths).
pub fn same_secret(expected: &str, given: &str) -> bool {
    let (expected, given) = (expected.as_bytes(), given.as_bytes());
    expected.len() == given.len()
        && expected
            .iter()
            .zip(given)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_short_and_escaped() {
        let control = "\u{1}".repeat(4 << 20);
        let shown = preview(&control);
        assert!(shown.len() < 32 * 8, "{}", shown.len());
        assert!(!shown.contains('\u{1}'));
        assert!(shown.ends_with('…'));
        assert_eq!(preview("hi \"you\""), r#""hi \"you\"""#);
        let error = Command::parse(&"x".repeat(16 << 20)).unwrap_err();
        assert!(error.len() < 300, "{}", error.len());
    }

    #[test]
    fn commands_parse_by_their_fields() {
        assert!(matches!(
            Command::parse(r#"{"join":"rust"}"#),
            Ok(Command::Join { .. })
        ));
        assert!(matches!(
            Command::parse(r#"{"say":"rust","text":"hi"}"#),
            Ok(Command::Say { .. })
        ));
        assert!(Command::parse(r#"{"dance":true}"#).is_err());
        assert!(check_text("two\nlines\tand a tab").is_ok());
        assert!(check_text("bell\u{7}").is_err());
    }

    #[test]
    fn the_format_table_is_sorted_and_complete_for_unicode_15_1() {
        let mut count = 0;
        for pair in FORMAT_CHARACTERS.windows(2) {
            assert!(pair[0].1 < pair[1].0, "{pair:?}");
        }
        for &(first, last) in &FORMAT_CHARACTERS {
            assert!(first <= last);
            count += u32::from(last) - u32::from(first) + 1;
            for c in [first, last] {
                assert!(is_format(c) && unfit_for_names(c), "{c:?}");
            }
            // Just outside a range is outside the table: the search finds edges.
            for outside in [u32::from(first) - 1, u32::from(last) + 1] {
                assert!(!is_format(char::from_u32(outside).unwrap()), "{outside:X}");
            }
        }
        assert_eq!(count, 170, "Unicode 15.1 has 170 format characters");
        // Letters, marks, spaces and emoji are fine; bidi, zero-width and tag
        // characters, controls and line separators are not.
        for fine in [
            'a',
            'é',
            'ß',
            'ش',
            'א',
            '\u{0301}',
            ' ',
            '\u{00A0}',
            '🦀',
            '\u{E0100}',
        ] {
            assert!(!unfit_for_names(fine), "{fine:?}");
        }
        for unfit in [
            '\u{202E}',
            '\u{2066}',
            '\u{200B}',
            '\u{200F}',
            '\u{FEFF}',
            '\u{E0041}',
            '\u{0000}',
            '\u{007F}',
            '\u{0085}',
            '\u{2028}',
            '\u{2029}',
            '\u{00AD}',
        ] {
            assert!(unfit_for_names(unfit), "{unfit:?}");
        }
    }
}
