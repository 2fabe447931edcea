//! Prints the polarity of each argument (or of each line of standard input).
//!
//! ```text
//! cargo run --release -p neural --example polarity -- "What a lovely day." "This is awful."
//! ```

use std::io::BufRead;
use std::process::ExitCode;

fn main() -> ExitCode {
    let analyzer = match neural::Analyzer::load(&neural::default_model_dir()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lines: Box<dyn Iterator<Item = String>> = if args.is_empty() {
        Box::new(std::io::stdin().lock().lines().map_while(Result::ok))
    } else {
        Box::new(args.into_iter())
    };
    for line in lines {
        match analyzer.polarity(&line) {
            Ok(p) => println!("{p:+.3}  {line}"),
            Err(e) => println!("error: {e}  {line:?}"),
        }
    }
    ExitCode::SUCCESS
}
