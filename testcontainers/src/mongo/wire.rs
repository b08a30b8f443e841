//! Message framing (research/mongo-wire.md §2): the 16-byte header, OP_MSG both ways, and the
//! legacy OP_QUERY / OP_REPLY pair that older clients use for their first `isMaster`.

use bson::{Bson, Document, RawDocument};
use tokio::io::{AsyncRead, AsyncReadExt};

pub const OP_REPLY: i32 = 1;
pub const OP_QUERY: i32 = 2004;
pub const OP_COMPRESSED: i32 = 2012;
pub const OP_MSG: i32 = 2013;
/// mongod's `maxMessageSizeBytes`; anything longer is refused before it is read.
pub const MAX_MESSAGE_SIZE: i32 = 48_000_000;

const CHECKSUM_PRESENT: u32 = 1;
const MORE_TO_COME: u32 = 1 << 1;
/// Bits 0-15 are "required": a receiver that does not know one must fail.
const KNOWN_REQUIRED: u32 = CHECKSUM_PRESENT | MORE_TO_COME;

/// Why a connection is being closed. Only ever logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("message length {0} outside 17..={MAX_MESSAGE_SIZE}")]
    BadLength(i32),
    #[error("unsupported opcode {0}")]
    Opcode(i32),
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}

#[derive(Debug)]
pub enum Request {
    Msg {
        request_id: i32,
        more_to_come: bool,
        body: Document,
    },
    Query {
        request_id: i32,
        collection: String,
        body: Document,
    },
}

/// Reads one message. `Ok(None)` is a clean EOF at a message boundary (drivers just close).
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Request>, WireError> {
    let mut header = [0u8; 16];
    match r.read(&mut header[..1]).await? {
        0 => return Ok(None),
        _ => r.read_exact(&mut header[1..]).await?,
    };
    let len = i32_at(&header, 0);
    let request_id = i32_at(&header, 4);
    let op_code = i32_at(&header, 12);
    if len <= 16 || len > MAX_MESSAGE_SIZE {
        return Err(WireError::BadLength(len));
    }
    if op_code != OP_MSG && op_code != OP_QUERY {
        // OP_COMPRESSED included: compression is never negotiated (we omit `compression`).
        return Err(WireError::Opcode(op_code));
    }
    let mut body = vec![0u8; (len - 16) as usize];
    r.read_exact(&mut body).await?;
    match op_code {
        OP_MSG => {
            let (more_to_come, body) = parse_msg(&body)?;
            Ok(Some(Request::Msg {
                request_id,
                more_to_come,
                body,
            }))
        }
        _ => parse_query(request_id, &body).map(Some),
    }
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Splits one BSON document off the front of `b`, fully validated.
fn take_document(b: &[u8]) -> Result<(Document, &[u8]), WireError> {
    if b.len() < 5 {
        return Err(WireError::Malformed("truncated document"));
    }
    let len = i32_at(b, 0);
    let len = usize::try_from(len).map_err(|_| WireError::Malformed("negative document length"))?;
    if len < 5 || len > b.len() {
        return Err(WireError::Malformed("document length exceeds the message"));
    }
    let raw = RawDocument::from_bytes(&b[..len]).map_err(|_| WireError::Malformed("bad BSON"))?;
    let doc = Document::try_from(raw).map_err(|_| WireError::Malformed("bad BSON"))?;
    Ok((doc, &b[len..]))
}

fn take_cstring(b: &[u8]) -> Result<(String, &[u8]), WireError> {
    let nul = b
        .iter()
        .position(|&c| c == 0)
        .ok_or(WireError::Malformed("unterminated cstring"))?;
    let s =
        std::str::from_utf8(&b[..nul]).map_err(|_| WireError::Malformed("cstring not UTF-8"))?;
    Ok((s.to_owned(), &b[nul + 1..]))
}

fn parse_msg(body: &[u8]) -> Result<(bool, Document), WireError> {
    if body.len() < 5 {
        return Err(WireError::Malformed("OP_MSG too short"));
    }
    let flags = u32_at(body, 0);
    if flags & 0xffff & !KNOWN_REQUIRED != 0 {
        return Err(WireError::Malformed("unknown required flag bit"));
    }
    let mut rest = &body[4..];
    if flags & CHECKSUM_PRESENT != 0 {
        // CRC-32C is optional to verify; drop it so it is not read as a section.
        if rest.len() < 4 {
            return Err(WireError::Malformed("checksum missing"));
        }
        rest = &rest[..rest.len() - 4];
    }
    let mut command: Option<Document> = None;
    let mut sequences: Vec<(String, Vec<Bson>)> = Vec::new();
    while let Some((&kind, tail)) = rest.split_first() {
        match kind {
            0 => {
                let (doc, after) = take_document(tail)?;
                if command.replace(doc).is_some() {
                    return Err(WireError::Malformed("two kind-0 sections"));
                }
                rest = after;
            }
            1 => {
                if tail.len() < 4 {
                    return Err(WireError::Malformed("truncated sequence"));
                }
                let size = usize::try_from(i32_at(tail, 0))
                    .map_err(|_| WireError::Malformed("negative sequence size"))?;
                if size < 4 || size > tail.len() {
                    return Err(WireError::Malformed("sequence size exceeds the message"));
                }
                let (ident, mut docs) = take_cstring(&tail[4..size])?;
                let mut items = Vec::new();
                while !docs.is_empty() {
                    let (d, after) = take_document(docs)?;
                    items.push(Bson::Document(d));
                    docs = after;
                }
                sequences.push((ident, items));
                rest = &tail[size..];
            }
            _ => return Err(WireError::Malformed("unknown section kind")),
        }
    }
    let mut body = command.ok_or(WireError::Malformed("no kind-0 section"))?;
    for (ident, items) in sequences {
        if body.contains_key(&ident) {
            return Err(WireError::Malformed("sequence duplicates a command field"));
        }
        body.insert(ident, items);
    }
    Ok((flags & MORE_TO_COME != 0, body))
}

fn parse_query(request_id: i32, body: &[u8]) -> Result<Request, WireError> {
    if body.len() < 4 {
        return Err(WireError::Malformed("OP_QUERY too short"));
    }
    let (collection, rest) = take_cstring(&body[4..])?;
    if rest.len() < 8 {
        return Err(WireError::Malformed("OP_QUERY too short"));
    }
    let (mut query, _selector) = take_document(&rest[8..])?;
    // Some clients wrap the command with read preference: {$query: {...}, $readPreference: ...}.
    if let Ok(inner) = query.get_document("$query") {
        query = inner.clone();
    }
    Ok(Request::Query {
        request_id,
        collection,
        body: query,
    })
}

fn header(out: &mut Vec<u8>, request_id: i32, response_to: i32, op_code: i32) {
    out.extend_from_slice(&0i32.to_le_bytes()); // length, patched at the end
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
}

fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let len = out.len() as i32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// OP_MSG reply: flags 0, one kind-0 section, no checksum.
pub fn encode_msg(request_id: i32, response_to: i32, doc: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    header(&mut out, request_id, response_to, OP_MSG);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    doc.to_writer(&mut out)
        .expect("writing BSON into a Vec cannot fail");
    finish(out)
}

/// OP_REPLY: no flags, cursor 0, one document.
pub fn encode_reply(request_id: i32, response_to: i32, doc: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    header(&mut out, request_id, response_to, OP_REPLY);
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0i64.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&1i32.to_le_bytes());
    doc.to_writer(&mut out)
        .expect("writing BSON into a Vec cannot fail");
    finish(out)
}

/// Builds an OP_MSG request; the tests' raw clients use it.
pub fn encode_request(request_id: i32, doc: &Document) -> Vec<u8> {
    encode_msg(request_id, 0, doc)
}

/// Builds a legacy OP_QUERY on `<db>.$cmd`; the tests' raw clients use it.
pub fn encode_query(request_id: i32, db: &str, doc: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    header(&mut out, request_id, 0, OP_QUERY);
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(format!("{db}.$cmd").as_bytes());
    out.push(0);
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&(-1i32).to_le_bytes());
    doc.to_writer(&mut out)
        .expect("writing BSON into a Vec cannot fail");
    finish(out)
}

/// Reads one reply (OP_MSG or OP_REPLY) and returns its document; for the tests' raw clients.
pub async fn read_reply<R: AsyncRead + Unpin>(r: &mut R) -> Result<Document, WireError> {
    let mut header = [0u8; 16];
    r.read_exact(&mut header).await?;
    let len = i32_at(&header, 0);
    if len <= 16 || len > MAX_MESSAGE_SIZE {
        return Err(WireError::BadLength(len));
    }
    let mut body = vec![0u8; (len - 16) as usize];
    r.read_exact(&mut body).await?;
    match i32_at(&header, 12) {
        OP_MSG => Ok(parse_msg(&body)?.1),
        OP_REPLY if body.len() >= 20 => Ok(take_document(&body[20..])?.0),
        op => Err(WireError::Opcode(op)),
    }
}
