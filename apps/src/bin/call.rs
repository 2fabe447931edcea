//! `call`: one call, its result printed, then exit (non-zero on error). The seed's second
//! scenario: `call --transport tcp 9000 fibonacci_generator.calculate 90`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rpc_apps::cli::{init_logging, parse_seconds, TransportKind, TransportOptions};
use rpc_apps::connect;
use rpc_apps::security::{ProducerTls, TransportSecurity};
use rpc_core::{Call, Client, Encoding};

/// Calls one procedure once and prints its result: `call --transport tcp 9000
/// fibonacci_generator.calculate 90`, or `call --transport amqp neural_analyzer.polarity I love it`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    transport: TransportOptions,

    #[command(flatten)]
    tls: ProducerTls,

    /// With --transport tcp: the consumer (port or host:port; several separated by commas),
    /// then the procedure and its arguments. With amqp: the procedure and its arguments.
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true, value_name = "[CONSUMER] PROCEDURE ARGS")]
    words: Vec<String>,

    /// Send the arguments as one JSON object (`'{"n": 90}'`) instead of text tokens.
    #[arg(long)]
    json: bool,

    /// The call's timeout, in seconds.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    timeout: Duration,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging("warn");
    let mut words = args.words.as_slice();
    let mut consumers = Vec::new();
    if args.transport.transport == TransportKind::Tcp {
        let Some((first, rest)) = words.split_first() else {
            return usage("name the consumer, e.g. `call --transport tcp 9000 fibonacci_generator.calculate 90`");
        };
        consumers = first.split(',').map(str::to_string).collect();
        words = rest;
    }
    let Some((procedure, rest)) = words.split_first() else {
        return usage("name the procedure, e.g. `fibonacci_generator.calculate 90`");
    };
    let (encoding, body) = if args.json {
        (Encoding::Json, rest.join(" "))
    } else {
        (Encoding::Text, rest.join(" "))
    };
    let security = match TransportSecurity::producer(&args.tls) {
        Ok(security) => security,
        Err(err) => return usage(&err),
    };
    let transport = match connect::client_transport(&args.transport, &consumers, &security).await {
        Ok(transport) => transport,
        Err(err) => return fail(&err),
    };
    let call = Call::new(procedure.clone(), encoding, body.into_bytes()).with_timeout(args.timeout);
    match Client::from_arc(transport).send(call).await {
        Ok(result) => {
            println!("{}", String::from_utf8_lossy(&result));
            ExitCode::SUCCESS
        }
        Err(err) => fail(&err),
    }
}

fn fail(err: &rpc_core::RpcError) -> ExitCode {
    eprintln!("{}", rpc_core::text::render_error(err));
    ExitCode::FAILURE
}

fn usage(message: &str) -> ExitCode {
    eprintln!("call: {message}");
    ExitCode::from(2)
}
