//! Property tests: the argument decoders of all three encodings, the text-command parser and
//! the envelope decoder never panic on arbitrary bytes, and always answer a clear error.
//!
//! 10,000 cases per property by default; set `RPC_PROPTEST_CASES` for more.

use proptest::prelude::*;
use rpc_core::args::Arguments;
use rpc_core::encoding::from_bincode;
use rpc_core::{text, Encoding, Request, RpcError};

fn cases() -> u32 {
    std::env::var("RPC_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

const PARAMS: &[&str] = &["n", "name", "rest"];

/// Decodes a three-parameter signature (`u64`, `String`, rest-of-line `String`) as generated
/// code does.
fn decode(encoding: Encoding, bytes: &[u8]) -> Result<(u64, String, String), RpcError> {
    let mut args = Arguments::new(encoding, bytes, PARAMS)?;
    let n = args.next("n")?;
    let name = args.next("name")?;
    let rest = args.rest("rest")?;
    args.finish()?;
    Ok((n, name, rest))
}

fn assert_clear(result: Result<(u64, String, String), RpcError>) {
    if let Err(err) = result {
        match &err {
            RpcError::BadArguments(message) => assert!(!message.is_empty()),
            other => panic!("argument decoding answered {other:?}, not bad arguments"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn argument_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for encoding in [Encoding::Bincode, Encoding::Json, Encoding::Text] {
            assert_clear(decode(encoding, &bytes));
        }
    }

    #[test]
    fn json_shaped_input_never_panics(text in r#"[\[\]{}":, 0-9a-z\-.e]{0,64}"#) {
        assert_clear(decode(Encoding::Json, text.as_bytes()));
    }

    #[test]
    fn text_arguments_round_trip(n in any::<u64>(), name in "[a-z]{1,12}", rest in "[a-z][a-z ]{0,40}") {
        let line = format!("{n} {name} {rest}");
        let (got_n, got_name, got_rest) = decode(Encoding::Text, line.as_bytes()).expect("decodes");
        prop_assert_eq!(got_n, n);
        prop_assert_eq!(got_name, name);
        prop_assert_eq!(got_rest, rest);
    }

    #[test]
    fn text_commands_never_panic(line in any::<String>()) {
        match text::parse_command(&line) {
            Ok(command) => prop_assert!(command.procedure.contains('.')),
            Err(RpcError::Protocol(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "parse_command answered {:?}", other),
        }
        let _ = text::parse_error(&line);
    }

    #[test]
    fn envelopes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        match from_bincode::<Request>(&bytes) {
            Ok(_) => {}
            Err(RpcError::Protocol(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "envelope decoding answered {:?}", other),
        }
    }
}
