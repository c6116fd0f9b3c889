//! A tiny blocking Redis (RESP2) client: enough to pipeline commands and read nested replies
//! (`XADD`, `XREADGROUP`, `XACK`) for the queue comparison. No dependency on a Redis crate.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use crate::Error;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The elements of an array reply (empty for a null array).
    pub fn items(&self) -> &[Value] {
        match self {
            Value::Array(Some(v)) => v,
            _ => &[],
        }
    }

    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(Some(b)) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

/// One connection; commands are buffered by [`Client::queue`] and sent by [`Client::flush`].
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Result<Client, Error> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(Client { reader: BufReader::with_capacity(1 << 16, stream), writer, out: Vec::new() })
    }

    /// Appends one command (an array of bulk strings) to the send buffer.
    pub fn queue<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            let a = a.as_ref();
            self.out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    pub fn flush(&mut self) -> Result<(), Error> {
        self.writer.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Sends one command and reads its reply; a Redis error reply becomes an `Err`.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, Error> {
        self.queue(args);
        self.flush()?;
        match self.read()? {
            Value::Error(e) => Err(format!("redis: {e}").into()),
            v => Ok(v),
        }
    }

    /// Reads one reply.
    pub fn read(&mut self) -> Result<Value, Error> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if line.len() < 3 || !line.ends_with(b"\r\n") {
            return Err("redis: connection closed or malformed reply".into());
        }
        let text = std::str::from_utf8(&line[1..line.len() - 2])?;
        Ok(match line[0] {
            b'+' => Value::Simple(text.to_string()),
            b'-' => Value::Error(text.to_string()),
            b':' => Value::Int(text.parse()?),
            b'$' => {
                let n: i64 = text.parse()?;
                if n < 0 {
                    Value::Bulk(None)
                } else {
                    let mut buf = vec![0u8; n as usize + 2];
                    std::io::Read::read_exact(&mut self.reader, &mut buf)?;
                    buf.truncate(n as usize);
                    Value::Bulk(Some(buf))
                }
            }
            b'*' => {
                let n: i64 = text.parse()?;
                if n < 0 {
                    Value::Array(None)
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.read()?);
                    }
                    Value::Array(Some(items))
                }
            }
            other => return Err(format!("redis: unexpected reply type {:?}", other as char).into()),
        })
    }
}
