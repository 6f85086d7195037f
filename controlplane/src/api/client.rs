//! The client side: one request, one answer.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Request, Response};

/// How long a client waits for the gateway (a `show` asks the manager thread).
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {path}: {source} (is ipsecgw running with this --socket, and are you root?)")]
    Connect { path: String, source: io::Error },
    #[error("control socket I/O: {0}")]
    Io(#[from] io::Error),
    #[error("the gateway's answer is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the gateway closed the connection without answering")]
    NoAnswer,
}

/// Sends one request and reads the answer.
pub fn request(path: &Path, r: &Request) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect { path: path.display().to_string(), source })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut line = serde_json::to_string(r)?;
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut answer = String::new();
    if BufReader::new(&stream).read_line(&mut answer)? == 0 {
        return Err(ClientError::NoAnswer);
    }
    Ok(serde_json::from_str(answer.trim())?)
}
