//! [`AmqpUrl`]: where the broker is (one URL, or several comma-separated for a cluster),
//! resolved from a flag, the environment or the default, and printed without its password.

use std::fmt;

/// The broker URL used when neither a flag nor the environment names one: the local broker with
/// RabbitMQ's default account and virtual host `/`.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The environment variables read for the URL, in order of preference.
pub const URL_VARIABLES: [&str; 2] = ["AMQP_URL", "RABBITMQ_URL"];

/// A broker URL (`amqp://` or `amqps://`), or several separated by commas (the nodes of a
/// cluster, tried in order), whose `Display` and `Debug` hide the passwords.
///
/// ```
/// use transport_amqp::AmqpUrl;
///
/// let url = AmqpUrl::new("amqps://app:s3cret@broker.example:5671/prod");
/// assert_eq!(url.to_string(), "amqps://app:***@broker.example:5671/prod");
/// assert_eq!(url.as_str(), "amqps://app:s3cret@broker.example:5671/prod");
///
/// let cluster = AmqpUrl::new("amqp://u:p@node1:5672/%2f, amqp://u:p@node2:5672/%2f");
/// let nodes: Vec<String> = cluster.brokers().map(|node| node.to_string()).collect();
/// assert_eq!(nodes, ["amqp://u:***@node1:5672/%2f", "amqp://u:***@node2:5672/%2f"]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrl(String);

impl AmqpUrl {
    /// Wraps a URL as given.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL to use: `flag` (the apps' `--amqp-url`) if given, else `AMQP_URL`, else
    /// `RABBITMQ_URL`, else [`DEFAULT_URL`]. Empty values count as unset.
    pub fn resolve(flag: Option<&str>) -> Self {
        Self::resolve_with(flag, |name| std::env::var(name).ok())
    }

    /// [`AmqpUrl::resolve`] with the environment read through `env`, for tests.
    pub fn resolve_with(flag: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Self {
        let chosen = flag
            .map(str::to_string)
            .into_iter()
            .chain(URL_VARIABLES.iter().filter_map(|name| env(name)))
            .find(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        Self(chosen.trim().to_string())
    }

    /// The full URL (or comma-separated URLs), passwords included: for connecting, never for
    /// logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Each broker of the list, in the order given: the nodes a client tries in turn. Empty
    /// entries (a trailing comma) are skipped; a single URL yields itself.
    pub fn brokers(&self) -> impl Iterator<Item = AmqpUrl> + '_ {
        self.0
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(AmqpUrl::new)
    }

    /// Whether the URL asks for TLS (`amqps://`).
    pub fn is_tls(&self) -> bool {
        self.0.to_ascii_lowercase().starts_with("amqps://")
    }
}

impl Default for AmqpUrl {
    fn default() -> Self {
        Self::new(DEFAULT_URL)
    }
}

impl fmt::Display for AmqpUrl {
    /// The URL with the password replaced by `***`; several URLs separated by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains(',') {
            for (i, broker) in self.brokers().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{broker}")?;
            }
            return Ok(());
        }
        let url = &self.0;
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            // Not a URL we can take apart: show nothing that could be a secret.
            return f.write_str("<unparsable AMQP URL>");
        };
        let rest = &url[scheme_end..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                let hidden = if userinfo.contains(':') { ":***" } else { "" };
                write!(
                    f,
                    "{}{user}{hidden}{}",
                    &url[..scheme_end],
                    &url[scheme_end + at..]
                )
            }
            None => f.write_str(url),
        }
    }
}

impl fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmqpUrl({self})")
    }
}

impl From<&str> for AmqpUrl {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for AmqpUrl {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_display() {
        for (url, shown) in [
            (DEFAULT_URL, "amqp://guest:***@127.0.0.1:5672/%2f"),
            ("amqp://u:p@ss@h/v", "amqp://u:***@h/v"),
            ("amqp://user@host", "amqp://user@host"),
            ("amqp://host:5672", "amqp://host:5672"),
            ("amqps://a:b@h?x=1", "amqps://a:***@h?x=1"),
            ("garbage:secret", "<unparsable AMQP URL>"),
        ] {
            let url = AmqpUrl::new(url);
            assert_eq!(url.to_string(), shown);
            assert!(!format!("{url:?}").contains("secret"));
        }
    }

    #[test]
    fn a_cluster_is_a_comma_separated_list() {
        let url = AmqpUrl::new(" amqp://a:secret@n1:5672/%2f,amqp://b:secret@n2:5673/%2f, ");
        let brokers: Vec<AmqpUrl> = url.brokers().collect();
        assert_eq!(brokers.len(), 2);
        assert_eq!(brokers[1].as_str(), "amqp://b:secret@n2:5673/%2f");
        assert_eq!(
            url.to_string(),
            "amqp://a:***@n1:5672/%2f,amqp://b:***@n2:5673/%2f"
        );
        assert!(!format!("{url:?}").contains("secret"));
        assert_eq!(AmqpUrl::new(DEFAULT_URL).brokers().count(), 1);
    }

    #[test]
    fn flag_then_environment_then_default() {
        let env = |name: &str| match name {
            "AMQP_URL" => Some("amqp://a".to_string()),
            "RABBITMQ_URL" => Some("amqp://r".to_string()),
            _ => None,
        };
        assert_eq!(
            AmqpUrl::resolve_with(Some("amqp://f"), env).as_str(),
            "amqp://f"
        );
        assert_eq!(AmqpUrl::resolve_with(None, env).as_str(), "amqp://a");
        let only_rabbit = |name: &str| (name == "RABBITMQ_URL").then(|| "amqp://r".to_string());
        assert_eq!(
            AmqpUrl::resolve_with(None, only_rabbit).as_str(),
            "amqp://r"
        );
        let empty = |_: &str| Some(String::new());
        assert_eq!(AmqpUrl::resolve_with(Some(""), empty).as_str(), DEFAULT_URL);
        assert!(AmqpUrl::new("AMQPS://h").is_tls());
    }
}
