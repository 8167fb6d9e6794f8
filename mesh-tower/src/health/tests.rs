use super::grpc::{Malformed, decode_response, encode_request};
use super::*;

#[test]
fn a_new_endpoint_is_healthy_after_its_first_success() {
    let mut s = HealthState::new();
    assert!(!s.is_healthy() && !s.is_checked());
    assert_eq!(s.record(false, 2, 3), None, "already unhealthy");
    assert!(s.is_checked() && !s.is_healthy());
    assert_eq!(s.record(true, 2, 3), Some(Transition::Healthy));
    assert!(s.is_healthy());
}

#[test]
fn thresholds_count_consecutive_results() {
    let mut s = HealthState::new();
    s.record(true, 2, 3);
    assert_eq!(s.record(false, 2, 3), None);
    assert_eq!(s.record(false, 2, 3), None);
    assert_eq!(s.record(true, 2, 3), None, "a success resets the failures");
    assert_eq!(s.record(false, 2, 3), None);
    assert_eq!(s.record(false, 2, 3), None);
    assert_eq!(s.record(false, 2, 3), Some(Transition::Unhealthy));
    assert_eq!(s.record(false, 2, 3), None);
    assert_eq!(
        s.record(true, 2, 3),
        None,
        "once healthy, one is not enough"
    );
    assert_eq!(s.record(false, 2, 3), None);
    assert_eq!(s.record(true, 2, 3), None);
    assert_eq!(s.record(true, 2, 3), Some(Transition::Healthy));
}

#[test]
fn thresholds_of_zero_count_as_one() {
    let mut s = HealthState::new();
    s.record(true, 0, 0);
    assert_eq!(s.record(false, 0, 0), Some(Transition::Unhealthy));
    assert_eq!(s.record(true, 0, 0), Some(Transition::Healthy));
}

#[test]
fn requests_are_framed_protobuf() {
    assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
    assert_eq!(
        &encode_request("helloworld.Greeter")[..],
        &[&[0u8, 0, 0, 0, 20, 0x0a, 18][..], b"helloworld.Greeter"].concat()[..]
    );
    // A name of 200 bytes needs a two-byte varint length.
    let long = "s".repeat(200);
    let framed = encode_request(&long);
    assert_eq!(&framed[..8], &[0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
}

#[test]
fn responses_decode_and_skip_unknown_fields() {
    assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
    assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 2]), Ok(2));
    assert_eq!(decode_response(&[0, 0, 0, 0, 0]), Ok(0), "absent: UNKNOWN");
    // Field 2 (string "ab"), field 3 (fixed32), then status.
    let body = [
        0, 0, 0, 0, 11, 0x12, 2, b'a', b'b', 0x1d, 1, 2, 3, 4, 0x08, 1,
    ];
    assert_eq!(decode_response(&body), Ok(1));
}

#[test]
fn malformed_responses_are_errors_not_panics() {
    assert_eq!(decode_response(&[]), Err(Malformed("empty body")));
    assert_eq!(
        decode_response(&[1, 0, 0, 0, 0]),
        Err(Malformed("compressed message"))
    );
    assert_eq!(
        decode_response(&[0, 0, 0]),
        Err(Malformed("truncated frame header"))
    );
    assert_eq!(
        decode_response(&[0, 0, 0, 0, 9, 0x08]),
        Err(Malformed("frame shorter than its length"))
    );
    assert_eq!(
        decode_response(&[0, 0, 0, 0, 2, 0x08, 0x80]),
        Err(Malformed("truncated varint"))
    );
    assert_eq!(
        decode_response(&[0, 0, 0, 0, 1, 0x0f]),
        Err(Malformed("unknown wire type"))
    );
    for len in 0..=255u8 {
        for b in [0u8, 0x08, 0x0a, 0x80, 0xff] {
            let _ = decode_response(&[0, 0, 0, 0, len, b, b, len]);
        }
    }
}
