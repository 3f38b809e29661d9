//! Web origins (`scheme://host[:port]`), as browsers send them in `Origin` and `Referer`
//! and as `server.public_origin` names this server.

/// The scheme and `host[:port]` of an absolute http(s) URL, e.g. `http://A.b:8080/x` →
/// (`http`, `a.b:8080`). The default port of the scheme is dropped, as browsers drop it.
#[derive(Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: &'static str,
    authority: String,
}

impl Origin {
    /// The origin of `url`; `None` for anything but an absolute http(s) URL with a host.
    pub fn parse(url: &str) -> Option<Self> {
        Self::split(url).map(|(origin, _)| origin)
    }

    /// Like [`Origin::parse`], but only for a bare origin: no path, query or fragment (a
    /// lone trailing `/` is allowed). For checking `server.public_origin`.
    pub fn parse_bare(url: &str) -> Option<Self> {
        Self::split(url)
            .filter(|(_, rest)| rest.is_empty() || *rest == "/")
            .map(|(origin, _)| origin)
    }

    fn split(url: &str) -> Option<(Self, &str)> {
        let (scheme, rest) = if let Some(r) = strip_prefix_ignore_case(url, "https://") {
            ("https", r)
        } else if let Some(r) = strip_prefix_ignore_case(url, "http://") {
            ("http", r)
        } else {
            return None;
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (auth, tail) = rest.split_at(end);
        // Userinfo has no place in an Origin; in a Referer it is never sent by browsers.
        if auth.is_empty() || auth.contains('@') {
            return None;
        }
        let auth = auth
            .strip_suffix(default_port(scheme))
            .unwrap_or(auth)
            .to_ascii_lowercase();
        Some((
            Origin {
                scheme,
                authority: auth,
            },
            tail,
        ))
    }

    /// Whether this origin's `host[:port]` is `host`, a `Host` header value (which may spell
    /// out the default port of this origin's scheme).
    pub fn same_host(&self, host: &str) -> bool {
        let host = host.strip_suffix(default_port(self.scheme)).unwrap_or(host);
        self.authority.eq_ignore_ascii_case(host)
    }
}

fn default_port(scheme: &str) -> &'static str {
    if scheme == "https" { ":443" } else { ":80" }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(scheme: &'static str, authority: &str) -> Option<Origin> {
        Some(Origin {
            scheme,
            authority: authority.to_owned(),
        })
    }

    #[test]
    fn origins_of_origins_and_referers() {
        assert_eq!(
            Origin::parse("http://127.0.0.1:8080"),
            origin("http", "127.0.0.1:8080")
        );
        assert_eq!(
            Origin::parse("http://Example.com/a?b"),
            origin("http", "example.com")
        );
        assert_eq!(
            Origin::parse("http://example.com:80/"),
            origin("http", "example.com")
        );
        assert_eq!(
            Origin::parse("HTTPS://example.com:443"),
            origin("https", "example.com")
        );
        assert_eq!(
            Origin::parse("https://example.com:8443#x"),
            origin("https", "example.com:8443")
        );
        assert_eq!(
            Origin::parse("https://example.com:80"),
            origin("https", "example.com:80"),
            "80 is not https's default port"
        );
        assert_eq!(Origin::parse("null"), None);
        assert_eq!(Origin::parse("ftp://example.com"), None);
        assert_eq!(Origin::parse("http://user@evil.com"), None);
        assert_eq!(Origin::parse("http://"), None);
    }

    #[test]
    fn the_scheme_is_part_of_the_origin() {
        assert_ne!(
            Origin::parse("http://chat.example"),
            Origin::parse("https://chat.example")
        );
    }

    #[test]
    fn a_public_origin_is_bare() {
        assert!(Origin::parse_bare("https://chat.example").is_some());
        assert!(Origin::parse_bare("https://chat.example/").is_some());
        assert!(Origin::parse_bare("https://chat.example/app").is_none());
        assert!(Origin::parse_bare("chat.example").is_none());
    }

    #[test]
    fn a_host_header_may_spell_out_the_default_port() {
        let o = Origin::parse("https://chat.example").expect("an origin");
        assert!(o.same_host("chat.example:443"));
        assert!(o.same_host("Chat.Example"));
        assert!(!o.same_host("chat.example:8443"));
    }
}
