//! Protected mode, as Redis's: a listener on an address other machines can reach must be
//! secured (TLS or authentication), or the operator must say with `--insecure` that they accept
//! the risk. Otherwise the process refuses to start and says which flags do either.

use std::net::{IpAddr, ToSocketAddrs};

/// What secures a listener, and how the process was asked to listen.
#[derive(Debug, Clone)]
pub struct Protection {
    /// What is listening, for the message: `consumer --host`, `producer --listen`.
    pub listener: &'static str,
    /// How it is secured now, if it is (`TLS`, `RPC_SECRET`, `API keys`); `None` when open.
    pub secured_by: Option<String>,
    /// The flags that would secure it, for the message.
    pub how_to_secure: &'static str,
    /// `--insecure` was given.
    pub insecure: bool,
}

impl Protection {
    /// Checks that listening on `host` is allowed: a loopback address always is; another one
    /// when secured or with `--insecure` (then with a warning logged).
    ///
    /// # Errors
    /// The message to print: why the process refuses, and the flags that secure it or accept
    /// the risk.
    pub fn check(&self, host: &str) -> Result<(), String> {
        if is_loopback(host) {
            return Ok(());
        }
        if let Some(by) = &self.secured_by {
            tracing::info!("{} on {host}, secured by {by}", self.listener);
            return Ok(());
        }
        if self.insecure {
            tracing::warn!(
                "{} on {host} with neither TLS nor authentication (--insecure): anyone who can \
                 reach it can use it",
                self.listener
            );
            return Ok(());
        }
        Err(format!(
            "protected mode: refusing to listen on {host}, an address other machines can reach, \
             with neither TLS nor authentication ({listener}). Secure it with {how}; or, to \
             accept that anyone who reaches it can use it, add --insecure. Loopback \
             (127.0.0.1, ::1, localhost) needs neither.",
            listener = self.listener,
            how = self.how_to_secure,
        ))
    }
}

/// Whether `host` (an IP address, `localhost`, or a name) means only this machine: every
/// address it resolves to is a loopback one. An unspecified address (`0.0.0.0`, `::`) is not.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match (host, 0).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(insecure: bool) -> Protection {
        Protection {
            listener: "consumer --host",
            secured_by: None,
            how_to_secure: "--tls-cert and --tls-key, or RPC_SECRET_FILE",
            insecure,
        }
    }

    #[test]
    fn loopback_is_told_apart() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "10.0.0.1", "192.168.1.20"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn off_loopback_needs_security_or_insecure() {
        assert!(open(false).check("127.0.0.1").is_ok());
        let refused = open(false).check("0.0.0.0").expect_err("refused");
        assert!(
            refused.contains("--insecure") && refused.contains("--tls-cert"),
            "{refused}"
        );
        assert!(open(true).check("0.0.0.0").is_ok());
        let mut secured = open(false);
        secured.secured_by = Some("RPC_SECRET".into());
        assert!(secured.check("0.0.0.0").is_ok());
    }
}
