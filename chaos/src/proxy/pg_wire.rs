//! What a database proxy reads of the PostgreSQL protocol: enough to tell a
//! chunk that executes a write outside any transaction block (which the
//! server commits on its own, an implicit transaction) from the others, so
//! that it pays the consensus round trip of a multi-region commit, as a
//! `COMMIT` does.
//!
//! Both directions of one connection feed one [`Session`]: the client's
//! messages (the statements it prepares, binds and executes, the simple
//! queries it sends) and the server's `ReadyForQuery`, whose status says
//! whether the session is in a transaction block. A session that turns to
//! TLS (the server accepted an SSL or GSS request) is opaque: nothing is
//! charged, as a `COMMIT` inside it cannot be read either. Nothing is
//! changed in either direction: the proxy only reads.

use std::collections::HashMap;

/// `SSLRequest` and `GSSENCRequest` codes: the server answers each with one
/// untyped byte.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// Bodies longer than this are skipped, not read (a `Bind` with large
/// parameters, `COPY` data): what they would tell is then unknown.
const MAX_KEPT_BODY: usize = 1 << 20;

/// One connection's protocol state, as far as the proxy follows it.
#[derive(Debug, Default)]
pub struct Session {
    client: Reader,
    server: Reader,
    /// The client's startup is over: its messages are typed from now on.
    started: bool,
    /// SSL or GSS requests whose one-byte answer has not come yet.
    answers_due: usize,
    /// Encrypted, or not the protocol this module knows: nothing is read.
    opaque: bool,
    /// In a transaction block (`BEGIN` sent, or the server's last
    /// `ReadyForQuery` said `T` or `E`).
    in_block: bool,
    /// Prepared statements by name: whether each is a write.
    statements: HashMap<Vec<u8>, bool>,
    /// Bound portals by name: whether each executes a write.
    portals: HashMap<Vec<u8>, bool>,
}

impl Session {
    /// Reads bytes the client sent; true when they execute a write outside
    /// any transaction block.
    pub fn read_client(&mut self, mut bytes: &[u8]) -> bool {
        let mut autocommit_write = false;
        while !self.opaque {
            let typed = self.started;
            let Some(message) = self.client.next(&mut bytes, typed, client_keeps) else {
                break;
            };
            match message {
                Message::Corrupt => self.opaque = true,
                Message::Untyped(body) => match read_u32(&body, 0) {
                    Some(SSL_REQUEST | GSSENC_REQUEST) => self.answers_due += 1,
                    Some(CANCEL_REQUEST) => {}
                    _ => self.started = true,
                },
                Message::Typed(tag, body) => {
                    autocommit_write |= self.client_message(tag, &body);
                }
            }
        }
        autocommit_write
    }

    /// Reads bytes the server sent.
    pub fn read_server(&mut self, mut bytes: &[u8]) {
        while !self.opaque {
            if self.answers_due > 0 && self.server.between_messages() {
                let Some((&answer, rest)) = bytes.split_first() else {
                    break;
                };
                bytes = rest;
                self.answers_due -= 1;
                // `S` or `G`: TLS or GSS encryption follows.
                if answer != b'N' {
                    self.opaque = true;
                }
                continue;
            }
            match self.server.next(&mut bytes, true, |tag| tag == b'Z') {
                None => break,
                Some(Message::Corrupt) => self.opaque = true,
                Some(Message::Typed(b'Z', body)) => {
                    self.in_block = body.first().is_some_and(|&status| status != b'I');
                }
                Some(_) => {}
            }
        }
    }

    fn client_message(&mut self, tag: u8, body: &[u8]) -> bool {
        match tag {
            // Query: the statement runs now.
            b'Q' => match classify(c_string(body).0) {
                Statement::Begin => self.in_block = true,
                Statement::End => self.in_block = false,
                Statement::Write => return !self.in_block,
                Statement::Other => {}
            },
            // Parse: name, query.
            b'P' => {
                let (name, rest) = c_string(body);
                let write = classify(c_string(rest).0) == Statement::Write;
                self.statements.insert(name.to_vec(), write);
            }
            // Bind: portal, statement.
            b'B' => {
                let (portal, rest) = c_string(body);
                let (statement, _) = c_string(rest);
                let write = self.statements.get(statement).copied().unwrap_or(false);
                self.portals.insert(portal.to_vec(), write);
            }
            // Execute: portal.
            b'E' => {
                let (portal, _) = c_string(body);
                let write = self.portals.get(portal).copied().unwrap_or(false);
                return write && !self.in_block;
            }
            // Close: `S` statement or `P` portal, name.
            b'C' => {
                if let Some((&kind, rest)) = body.split_first() {
                    let (name, _) = c_string(rest);
                    match kind {
                        b'S' => self.statements.remove(name),
                        _ => self.portals.remove(name),
                    };
                }
            }
            _ => {}
        }
        false
    }
}

fn client_keeps(tag: u8) -> bool {
    matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'C')
}

/// One complete message.
#[derive(Debug, PartialEq)]
enum Message {
    /// A startup-phase message (no type byte): its body.
    Untyped(Vec<u8>),
    /// A type byte and its body (empty when skipped).
    Typed(u8, Vec<u8>),
    /// A length no message has.
    Corrupt,
}

/// Cuts one direction's bytes into messages, across chunk boundaries.
#[derive(Debug, Default)]
struct Reader {
    header: Vec<u8>,
    /// The message whose body is being read: its tag, whether its body is
    /// kept, and how much of it is still to come.
    current: Option<(u8, bool, usize)>,
    body: Vec<u8>,
}

impl Reader {
    fn between_messages(&self) -> bool {
        self.header.is_empty() && self.current.is_none()
    }

    /// The next complete message in `bytes` (consuming what it read), or
    /// `None` when `bytes` ends first.
    fn next(
        &mut self,
        bytes: &mut &[u8],
        typed: bool,
        keep: impl Fn(u8) -> bool,
    ) -> Option<Message> {
        loop {
            if let Some((tag, kept, remaining)) = self.current {
                let n = remaining.min(bytes.len());
                if kept {
                    self.body.extend_from_slice(&bytes[..n]);
                }
                *bytes = &bytes[n..];
                let remaining = remaining - n;
                if remaining > 0 {
                    self.current = Some((tag, kept, remaining));
                    return None;
                }
                self.current = None;
                let body = std::mem::take(&mut self.body);
                return Some(if typed {
                    Message::Typed(tag, body)
                } else {
                    Message::Untyped(body)
                });
            }
            let header_len = if typed { 5 } else { 4 };
            let n = (header_len - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            *bytes = &bytes[n..];
            if self.header.len() < header_len {
                return None;
            }
            let (tag, length) = if typed {
                (self.header[0], read_u32(&self.header, 1))
            } else {
                (0, read_u32(&self.header, 0))
            };
            self.header.clear();
            // The length counts itself.
            let Some(length) = length.and_then(|l| (l as usize).checked_sub(4)) else {
                return Some(Message::Corrupt);
            };
            let kept = (!typed || keep(tag)) && length <= MAX_KEPT_BODY;
            self.current = Some((tag, kept, length));
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(word))
}

/// A NUL-terminated string and what follows it.
fn c_string(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (bytes, &[]),
    }
}

/// What a statement does to the session, as far as commits go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Statement {
    /// Opens a transaction block.
    Begin,
    /// Ends it (its `COMMIT` is charged as a commit already).
    End,
    /// Changes rows: outside a block, the server commits it on its own.
    Write,
    Other,
}

fn classify(sql: &[u8]) -> Statement {
    let words = words(sql);
    let first = words.first().map(Vec::as_slice).unwrap_or_default();
    let second = words.get(1).map(Vec::as_slice).unwrap_or_default();
    match first {
        b"BEGIN" | b"START" => Statement::Begin,
        // `ROLLBACK TO SAVEPOINT` stays in the block.
        b"ROLLBACK" if second == b"TO" => Statement::Other,
        b"COMMIT" | b"END" | b"ROLLBACK" | b"ABORT" => Statement::End,
        b"INSERT" | b"UPDATE" | b"DELETE" | b"UPSERT" | b"MERGE" => Statement::Write,
        // A data-modifying common table expression.
        b"WITH"
            if words
                .iter()
                .any(|w| matches!(w.as_slice(), b"INSERT" | b"UPDATE" | b"DELETE" | b"UPSERT")) =>
        {
            Statement::Write
        }
        _ => Statement::Other,
    }
}

/// The statement's words in upper case, comments and quoted text left out.
fn words(sql: &[u8]) -> Vec<Vec<u8>> {
    let mut words = Vec::new();
    let mut word = Vec::new();
    let mut i = 0;
    while i < sql.len() {
        let c = sql[i];
        let rest = &sql[i..];
        let skip_to = if rest.starts_with(b"--") {
            rest.iter()
                .position(|&b| b == b'\n')
                .map_or(sql.len(), |p| i + p + 1)
        } else if rest.starts_with(b"/*") {
            rest.windows(2)
                .position(|w| w == b"*/")
                .map_or(sql.len(), |p| i + p + 2)
        } else if c == b'\'' || c == b'"' {
            rest[1..]
                .iter()
                .position(|&b| b == c)
                .map_or(sql.len(), |p| i + p + 2)
        } else {
            if c.is_ascii_alphanumeric() || c == b'_' {
                word.push(c.to_ascii_uppercase());
            } else if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            i += 1;
            continue;
        };
        if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        i = skip_to;
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut message = vec![tag];
        message.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        message.extend_from_slice(body);
        message
    }

    fn untyped(body: &[u8]) -> Vec<u8> {
        let mut message = (body.len() as u32 + 4).to_be_bytes().to_vec();
        message.extend_from_slice(body);
        message
    }

    fn startup() -> Vec<u8> {
        let mut body = 196_608u32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0ledger\0\0");
        untyped(&body)
    }

    fn parse(name: &str, sql: &str) -> Vec<u8> {
        typed(b'P', format!("{name}\0{sql}\0\0\0").as_bytes())
    }

    fn bind(portal: &str, statement: &str) -> Vec<u8> {
        typed(
            b'B',
            format!("{portal}\0{statement}\0\0\0\0\0\0\0").as_bytes(),
        )
    }

    fn execute(portal: &str) -> Vec<u8> {
        typed(b'E', format!("{portal}\0\0\0\0\0").as_bytes())
    }

    fn query(sql: &str) -> Vec<u8> {
        typed(b'Q', format!("{sql}\0").as_bytes())
    }

    fn ready(status: u8) -> Vec<u8> {
        typed(b'Z', &[status])
    }

    fn sync() -> Vec<u8> {
        typed(b'S', b"")
    }

    /// A session past its startup, the server ready and idle.
    fn started() -> Session {
        let mut session = Session::default();
        assert!(!session.read_client(&startup()));
        session.read_server(&[typed(b'R', &[0, 0, 0, 0]), ready(b'I')].concat());
        session
    }

    #[test]
    fn a_write_outside_a_block_is_charged_and_inside_one_is_not() {
        let mut session = started();
        // Prepared once, executed twice (sqlx and tokio-postgres re-use the
        // statement by name).
        let first = [
            parse("s1", "INSERT INTO votes VALUES ($1)"),
            bind("", "s1"),
            execute(""),
            sync(),
        ]
        .concat();
        assert!(session.read_client(&first));
        session.read_server(&ready(b'I'));
        assert!(session.read_client(&[bind("", "s1"), execute(""), sync()].concat()));
        session.read_server(&ready(b'I'));
        // A read is not.
        let read = [
            parse("s2", "SELECT * FROM votes"),
            bind("", "s2"),
            execute(""),
            sync(),
        ]
        .concat();
        assert!(!session.read_client(&read));
        session.read_server(&ready(b'I'));
        // Inside a block the write waits for the COMMIT (charged as such).
        assert!(!session.read_client(&query("BEGIN")));
        session.read_server(&ready(b'T'));
        assert!(!session.read_client(&[bind("", "s1"), execute(""), sync()].concat()));
        session.read_server(&ready(b'T'));
        assert!(!session.read_client(&query("COMMIT")));
        session.read_server(&ready(b'I'));
        assert!(session.read_client(&query("update drain_flags set drained = true")));
        // A failed block is still a block.
        session.read_server(&ready(b'E'));
        assert!(!session.read_client(&[bind("", "s1"), execute(""), sync()].concat()));
    }

    #[test]
    fn messages_split_anywhere_read_the_same() {
        let stream = [
            startup(),
            parse("", "  /* vote */ INSERT INTO votes VALUES (1)"),
            bind("", ""),
            execute(""),
            sync(),
        ]
        .concat();
        let mut session = Session::default();
        let mut charged = 0;
        for byte in &stream {
            charged += usize::from(session.read_client(std::slice::from_ref(byte)));
        }
        assert_eq!(
            charged, 1,
            "charged once, on the byte that completes the Execute"
        );
    }

    #[test]
    fn an_encrypted_session_is_opaque() {
        let mut session = Session::default();
        assert!(!session.read_client(&untyped(&SSL_REQUEST.to_be_bytes())));
        session.read_server(b"S");
        assert!(session.opaque);
        assert!(!session.read_client(&query("INSERT INTO t VALUES (1)")));

        // Refused SSL: plain text goes on.
        let mut session = Session::default();
        assert!(!session.read_client(&untyped(&SSL_REQUEST.to_be_bytes())));
        session.read_server(b"N");
        assert!(!session.read_client(&startup()));
        session.read_server(&ready(b'I'));
        assert!(session.read_client(&query("INSERT INTO t VALUES (1)")));
    }

    #[test]
    fn statements_are_classified_by_their_first_word() {
        for (sql, expected) in [
            ("INSERT INTO t VALUES (1)", Statement::Write),
            ("  update t set a = 1", Statement::Write),
            ("-- a comment\nDELETE FROM t", Statement::Write),
            ("UPSERT INTO t VALUES (1)", Statement::Write),
            (
                "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
                Statement::Write,
            ),
            (
                "WITH x AS (SELECT 1) SELECT 'insert' FROM x",
                Statement::Other,
            ),
            ("SELECT * FROM t FOR UPDATE", Statement::Other),
            ("SELECT 'DELETE'", Statement::Other),
            ("BEGIN ISOLATION LEVEL SERIALIZABLE", Statement::Begin),
            ("START TRANSACTION", Statement::Begin),
            ("COMMIT", Statement::End),
            ("ROLLBACK", Statement::End),
            ("ROLLBACK TO SAVEPOINT a", Statement::Other),
            ("", Statement::Other),
        ] {
            assert_eq!(classify(sql.as_bytes()), expected, "{sql}");
        }
    }

    #[test]
    fn a_corrupt_length_makes_the_session_opaque() {
        let mut session = started();
        assert!(!session.read_client(&[b'Q', 0, 0, 0, 1]));
        assert!(session.opaque);
    }
}
