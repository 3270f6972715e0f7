//! What differs between the Redis versions the honeypot can imitate.
//!
//! Every text here was read from the Redis sources of the version named in
//! its comment (`src/server.c`, `src/acl.c`, `src/networking.c`, `src/config.c`)
//! and is written out, not copied, so a reply never gives the honeypot away
//! by mixing versions.

/// The imitated version and the behaviour that follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// `(major, minor, patch)`.
    pub tuple: (u32, u32, u32),
    /// As written in INFO and HELLO (`7.0.15`).
    pub text: String,
}

impl Version {
    /// From the configured `MAJOR.MINOR.PATCH`.
    pub fn new(tuple: (u32, u32, u32)) -> Self {
        Version {
            tuple,
            text: format!("{}.{}.{}", tuple.0, tuple.1, tuple.2),
        }
    }

    /// Major version.
    pub fn major(&self) -> u32 {
        self.tuple.0
    }

    /// True from `major.minor.patch` on.
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.tuple >= (major, minor, patch)
    }

    /// The pre-AUTH limits on request sizes (CVE-2021-32675 fix) shipped in
    /// 5.0.14, 6.0.16 and 6.2.6; every 7.x has them.
    pub fn unauth_limits(&self) -> bool {
        let t = self.tuple;
        ((5, 0, 14)..(6, 0, 0)).contains(&t)
            || ((6, 0, 16)..(6, 2, 0)).contains(&t)
            || t >= (6, 2, 6)
    }

    /// Redis 5 and 6 refuse a multibulk count above 1024*1024; 7.0 allows
    /// up to INT_MAX.
    pub fn max_multibulk(&self) -> u64 {
        if self.major() >= 7 {
            i32::MAX as u64
        } else {
            1024 * 1024
        }
    }

    /// HELLO and ACL users arrived in 6.0.
    pub fn has_acl(&self) -> bool {
        self.major() >= 6
    }

    /// COMMAND DOCS, subcommands as separate commands (`config|get`) and
    /// protected configs arrived in 7.0.
    pub fn is_seven(&self) -> bool {
        self.major() >= 7
    }

    /// Redis's reply to an unknown command (error line without `-`).
    ///
    /// 5.x/6.x: ``unknown command `%s`, with args beginning with: `a`, ``;
    /// 7.x: `unknown command '%.128s', with args beginning with: 'a' `.
    /// Arguments are added while the list is under 128 bytes, each cut to
    /// what is left of the 128; every string is read as a C string (up to a
    /// NUL), as `%s` does.
    pub fn unknown_command(&self, args: &[Vec<u8>]) -> Vec<u8> {
        let seven = self.is_seven();
        let (open, close): (&[u8], &[u8]) = if seven { (b"'", b"' ") } else { (b"`", b"`, ") };
        let mut list: Vec<u8> = Vec::new();
        for a in args.iter().skip(1) {
            if list.len() >= 128 {
                break;
            }
            let room = 128 - list.len();
            let a = cstr(a);
            list.extend_from_slice(open);
            list.extend_from_slice(&a[..a.len().min(room)]);
            list.extend_from_slice(close);
        }
        let name = cstr(args.first().map(Vec::as_slice).unwrap_or_default());
        let name = if seven {
            &name[..name.len().min(128)]
        } else {
            name
        };
        let mut out = b"ERR unknown command ".to_vec();
        out.extend_from_slice(open);
        out.extend_from_slice(name);
        out.extend_from_slice(if seven { b"'" } else { b"`" });
        out.extend_from_slice(b", with args beginning with: ");
        out.extend_from_slice(&list);
        out
    }

    /// `wrong number of arguments for 'get' command` (7.x names
    /// subcommands `config|get`).
    pub fn arity_error(&self, fullname: &str) -> Vec<u8> {
        format!("ERR wrong number of arguments for '{fullname}' command").into_bytes()
    }

    /// AUTH with one argument when no password is set.
    pub fn auth_without_password(&self) -> &'static str {
        if self.has_acl() {
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
        } else {
            "ERR Client sent AUTH, but no password is set"
        }
    }

    /// AUTH with a wrong password.
    pub fn auth_wrong_password(&self) -> &'static str {
        if self.at_least(6, 2, 0) {
            "WRONGPASS invalid username-password pair or user is disabled."
        } else if self.has_acl() {
            "WRONGPASS invalid username-password pair"
        } else {
            "ERR invalid password"
        }
    }

    /// The error for an unknown subcommand of a container command
    /// (`CONFIG FOO`): 7.x checks it centrally, older versions in each
    /// command.
    pub fn unknown_subcommand(&self, container: &str, sub: &[u8]) -> Vec<u8> {
        let sub = cstr(sub);
        let upper = container.to_ascii_uppercase();
        let mut out = Vec::new();
        if self.is_seven() {
            out.extend_from_slice(b"ERR unknown subcommand '");
            out.extend_from_slice(&sub[..sub.len().min(128)]);
            out.extend_from_slice(format!("'. Try {upper} HELP.").as_bytes());
        } else {
            // 5.0-6.2: "Unknown subcommand or wrong number of arguments for '%s'. Try %s HELP."
            out.extend_from_slice(b"ERR Unknown subcommand or wrong number of arguments for '");
            out.extend_from_slice(sub);
            out.extend_from_slice(format!("'. Try {upper} HELP.").as_bytes());
        }
        out
    }
}

/// The bytes of `s` up to its first NUL, as C's `%s` prints them.
pub fn cstr(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(n) => &s[..n],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_texts() {
        let args = vec![b"FOO".to_vec(), b"bar".to_vec(), b"baz".to_vec()];
        assert_eq!(
            Version::new((7, 0, 15)).unknown_command(&args),
            b"ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ".to_vec()
        );
        assert_eq!(
            Version::new((5, 0, 7)).unknown_command(&args),
            b"ERR unknown command `FOO`, with args beginning with: `bar`, `baz`, ".to_vec()
        );
        // Long arguments are cut so the list stays near 128 bytes.
        let long = vec![b"x".to_vec(), vec![b'a'; 200], b"b".to_vec()];
        let t = Version::new((7, 0, 15)).unknown_command(&long);
        let tail = &t[b"ERR unknown command 'x', with args beginning with: ".len()..];
        assert_eq!(tail.len(), 128 + 3);
    }

    #[test]
    fn auth_texts_follow_version() {
        assert_eq!(
            Version::new((5, 0, 7)).auth_wrong_password(),
            "ERR invalid password"
        );
        assert_eq!(
            Version::new((6, 0, 9)).auth_wrong_password(),
            "WRONGPASS invalid username-password pair"
        );
        assert!(
            Version::new((7, 0, 15))
                .auth_wrong_password()
                .ends_with("or user is disabled.")
        );
        assert!(!Version::new((5, 0, 7)).unauth_limits());
        assert!(Version::new((5, 0, 14)).unauth_limits());
        assert!(!Version::new((6, 2, 5)).unauth_limits());
        assert!(Version::new((7, 0, 0)).unauth_limits());
    }
}
