//! The Push frame: byte-exact layout, round trips, malformed input.

use fanout::transport::{
    decode, encode_push, DecodeError, PushFrame, FRAME_KIND_PUSH, FRAME_VERSION,
};

#[test]
fn layout_matches_the_documentation() {
    let frame = encode_push("héllo", &[0xde, 0xad]).unwrap();
    let topic = "héllo".as_bytes();
    let mut want = vec![FRAME_VERSION, FRAME_KIND_PUSH, 0, topic.len() as u8];
    want.extend_from_slice(topic);
    want.extend_from_slice(&[0, 0, 0, 2, 0xde, 0xad]);
    assert_eq!(&frame[..], &want[..]);
}

#[test]
fn frames_round_trip_exactly() {
    let long_topic = "t".repeat(65_535);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a", vec![]),
        ("room/42", b"hello".to_vec()),
        ("\u{1F600}", vec![0; 70_000]),
        (long_topic.as_str(), vec![1, 2, 3]),
    ];
    for (topic, payload) in cases {
        let frame = encode_push(topic, &payload).unwrap();
        let push = decode(&frame).unwrap();
        assert_eq!(
            push,
            PushFrame {
                topic,
                payload: &payload
            }
        );
        assert_eq!(push.encode().unwrap(), frame);
    }
}

#[test]
fn malformed_frames_are_typed_errors() {
    let good = encode_push("ab", b"xyz").unwrap().to_vec();
    let with = |i: usize, b: u8| {
        let mut f = good.clone();
        f[i] = b;
        f
    };
    assert_eq!(
        decode(&[]),
        Err(DecodeError::Truncated { needed: 4, got: 0 })
    );
    assert_eq!(decode(&with(0, 2)), Err(DecodeError::UnsupportedVersion(2)));
    assert_eq!(decode(&with(1, 9)), Err(DecodeError::UnknownKind(9)));
    assert_eq!(
        decode(&[1, 1, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::EmptyTopic)
    );
    assert_eq!(decode(&with(4, 0xff)), Err(DecodeError::TopicNotUtf8));
    let mut long = good.clone();
    long.push(0);
    assert_eq!(decode(&long), Err(DecodeError::TrailingBytes { extra: 1 }));
    // A payload length pointing far past the end is truncation, not an allocation.
    let huge = [1, 1, 0, 1, b'a', 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(decode(&huge), Err(DecodeError::Truncated { .. })));
    // A topic length past the end.
    assert!(matches!(
        decode(&[1, 1, 0xff, 0xff, b'a']),
        Err(DecodeError::Truncated { .. })
    ));
    for e in [DecodeError::EmptyTopic, DecodeError::TopicNotUtf8] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn encoding_refuses_unencodable_topics() {
    assert!(encode_push("", b"x").is_err());
    assert!(encode_push(&"t".repeat(65_536), b"x").is_err());
}
