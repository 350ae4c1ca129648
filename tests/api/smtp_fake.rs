//! A small SMTP server on loopback for the message tests: enough of RFC 5321 for lettre (EHLO,
//! MAIL, RCPT, DATA, RSET, NOOP, QUIT), with a script of replies to give at the end of DATA
//! (e.g. a 451 then success), and a parser for what arrived (RFC 2047 headers, base64 parts).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message the server accepted (or refused: `refused` holds the reply it gave).
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
    pub refused: Option<String>,
}

#[derive(Clone)]
pub struct SmtpFake {
    pub port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<String>>>,
}

impl SmtpFake {
    pub async fn start() -> SmtpFake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = SmtpFake {
            port,
            got: Arc::default(),
            script: Arc::default(),
        };
        let f = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let f = f.clone();
                tokio::spawn(async move {
                    let _ = f.session(sock).await;
                });
            }
        });
        fake
    }

    /// Replies for the next DATA ends, in order (then `250`).
    pub fn reply_with(&self, replies: &[&str]) {
        let mut s = self.script.lock().unwrap();
        s.extend(replies.iter().map(|r| (*r).to_owned()));
    }

    /// Every DATA received so far, accepted or refused.
    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Accepted messages.
    pub fn accepted(&self) -> Vec<Mail> {
        self.all()
            .into_iter()
            .filter(|r| r.refused.is_none())
            .map(|r| Mail::parse(&r))
            .collect()
    }

    async fn session(&self, sock: tokio::net::TcpStream) -> std::io::Result<()> {
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 fake.smtp.test ESMTP\r\n").await?;
        let mut cur = Received {
            mail_from: String::new(),
            rcpt_to: Vec::new(),
            data: String::new(),
            refused: None,
        };
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let cmd = line.trim_end().to_owned();
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                w.write_all(b"250-fake.smtp.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?;
            } else if upper.starts_with("HELO") {
                w.write_all(b"250 fake.smtp.test\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                cur.mail_from = cmd[10..].trim().to_owned();
                cur.rcpt_to.clear();
                w.write_all(b"250 2.1.0 OK\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                cur.rcpt_to.push(
                    cmd[8..]
                        .trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned(),
                );
                w.write_all(b"250 2.1.5 OK\r\n").await?;
            } else if upper == "DATA" {
                w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    // Dot-stuffing (RFC 5321 4.5.2).
                    let l = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(l);
                }
                let reply = self.script.lock().unwrap().pop_front();
                cur.data = data;
                cur.refused = reply.clone();
                self.got.lock().unwrap().push(cur.clone());
                let reply = reply.unwrap_or_else(|| "250 2.0.0 queued".into());
                w.write_all(format!("{reply}\r\n").as_bytes()).await?;
            } else if upper == "RSET" || upper == "NOOP" {
                w.write_all(b"250 2.0.0 OK\r\n").await?;
            } else if upper == "QUIT" {
                w.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            } else {
                w.write_all(b"502 5.5.2 not implemented\r\n").await?;
            }
        }
    }
}

/// A received message taken apart.
#[derive(Clone, Debug)]
pub struct Mail {
    pub rcpt_to: Vec<String>,
    /// Unfolded raw headers (name, value), values still encoded.
    pub headers: Vec<(String, String)>,
    pub subject: String,
    pub from: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    fn parse(r: &Received) -> Mail {
        let (head, body) = r.data.split_once("\r\n\r\n").expect("headers and body");
        let headers = parse_headers(head);
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let ct = header("Content-Type");
        let boundary = ct
            .split("boundary=")
            .nth(1)
            .expect("multipart boundary")
            .trim_matches('"')
            .to_owned();
        let (mut text, mut html) = (String::new(), String::new());
        for part in body.split(&format!("--{boundary}")).skip(1) {
            if part.starts_with("--") {
                break; // the closing delimiter
            }
            let Some((ph, pb)) = part.split_once("\r\n\r\n") else {
                continue;
            };
            let ph = parse_headers(ph.trim_start_matches("\r\n"));
            let get = |n: &str| {
                ph.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.to_ascii_lowercase())
                    .unwrap_or_default()
            };
            assert_eq!(get("Content-Transfer-Encoding"), "base64", "{part}");
            let compact: String = pb.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("base64 part");
            let s = String::from_utf8(bytes).expect("utf-8 part");
            if get("Content-Type").starts_with("text/plain") {
                text = s;
            } else if get("Content-Type").starts_with("text/html") {
                html = s;
            }
        }
        Mail {
            rcpt_to: r.rcpt_to.clone(),
            subject: decode_words(&header("Subject")),
            from: decode_words(&header("From")),
            headers,
            text,
            html,
        }
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = out.last_mut() {
                // Folding whitespace between encoded words is not part of the text.
                last.1.push_str(line);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=` / `?q?`); whitespace between adjacent
/// encoded words is dropped, as the RFC says.
pub fn decode_words(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let after = &rest[start + 2..];
        let mut parts = after.splitn(3, '?');
        let (_charset, enc, tail) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let end = tail.find("?=").expect("end of encoded word");
        let payload = &tail[..end];
        let bytes = if enc.eq_ignore_ascii_case("b") {
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .unwrap()
        } else {
            let mut b = Vec::new();
            let p = payload.as_bytes();
            let mut i = 0;
            while i < p.len() {
                match p[i] {
                    b'_' => b.push(b' '),
                    b'=' => {
                        b.push(u8::from_str_radix(&payload[i + 1..i + 3], 16).unwrap());
                        i += 2;
                    }
                    c => b.push(c),
                }
                i += 1;
            }
            b
        };
        out.push_str(&String::from_utf8(bytes).unwrap());
        rest = &tail[end + 2..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}
