//! The seed's plain-text command line: `fibonacci_generator calculate 10`.

use crate::RpcError;

/// A text command split into its procedure and the (still encoded) argument text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The procedure, `handler.method`.
    pub procedure: String,
    /// Everything after the procedure, to be decoded with [`crate::Encoding::Text`].
    pub args: &'a str,
}

/// Splits `handler method arg1 arg2 ...` (or `handler.method arg1 ...`) into its parts.
///
/// ```
/// let cmd = rpc_core::text::parse_command("fibonacci_generator calculate 10\n").unwrap();
/// assert_eq!(cmd.procedure, "fibonacci_generator.calculate");
/// assert_eq!(cmd.args.trim(), "10");
/// ```
///
/// # Errors
/// [`RpcError::Protocol`] for an empty line or a handler with no method.
pub fn parse_command(line: &str) -> Result<Command<'_>, RpcError> {
    let (first, rest) = split_token(line);
    if first.is_empty() {
        return Err(RpcError::Protocol(
            "empty command; expected `handler method [args...]`".into(),
        ));
    }
    if first.contains('.') {
        return Ok(Command {
            procedure: first.to_string(),
            args: rest,
        });
    }
    let (method, args) = split_token(rest);
    if method.is_empty() {
        return Err(RpcError::Protocol(format!(
            "command `{first}` names no method; expected `handler method [args...]`"
        )));
    }
    Ok(Command {
        procedure: format!("{first}.{method}"),
        args,
    })
}

fn split_token(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    text.split_at(end)
}

/// The text-mode rendering of an error: `ERROR <kind>: <message>`.
///
/// ```
/// use rpc_core::RpcError;
/// let line = rpc_core::text::render_error(&RpcError::BadArguments("parameter `n`".into()));
/// assert_eq!(line, "ERROR BadArguments: parameter `n`");
/// ```
pub fn render_error(err: &RpcError) -> String {
    let message = err.message();
    if message.is_empty() {
        format!("ERROR {}: {err}", err.kind())
    } else {
        format!("ERROR {}: {message}", err.kind())
    }
}

/// Parses a line rendered by [`render_error`] back into the error, or `None` when the line is
/// a result rather than an error.
pub fn parse_error(line: &str) -> Option<RpcError> {
    let rest = line.strip_prefix("ERROR ")?;
    let (kind, message) = rest
        .split_once(": ")
        .unwrap_or((rest.trim_end_matches(':'), ""));
    Some(RpcError::from_wire(kind, message.trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse() {
        let a = parse_command("  calc add 1 2").unwrap();
        let b = parse_command("calc.add 1 2").unwrap();
        assert_eq!(a.procedure, b.procedure);
        assert_eq!(a.args.trim(), "1 2");
        assert!(parse_command("   \n").is_err());
        assert!(parse_command("calc").is_err());
    }

    #[test]
    fn errors_round_trip_through_text() {
        for err in [
            RpcError::BadArguments("parameter `n`: x".into()),
            RpcError::DeadlineExceeded,
            RpcError::Shutdown,
        ] {
            assert_eq!(parse_error(&render_error(&err)), Some(err));
        }
        assert_eq!(parse_error("55"), None);
    }
}
