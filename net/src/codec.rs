//! Length-prefixed `postcard` frames: a 4-byte big-endian length, then the message.
//!
//! A frame longer than the limit is refused from its length alone, before anything is
//! allocated, so a peer cannot make another reserve memory by announcing a huge message.

use std::io;

use futures_util::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{Request, Response};

/// The steal/fetch/done protocol's name and version; peers with another version do not talk.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/peer/tasks/3");

/// Encodes one frame, refusing a message over `max` bytes.
pub(crate) fn encode_frame<T: Serialize>(message: &T, max: usize) -> io::Result<Vec<u8>> {
    // Room for the prefix first, so the body is encoded in place after it.
    let mut frame = postcard::to_extend(message, vec![0u8; 4])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let len = frame.len() - 4;
    if len > max {
        return Err(too_large(len, max));
    }
    frame[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(frame)
}

/// Decodes the body of a frame (without its length prefix).
pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    postcard::from_bytes(body).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed message: {e}"),
        )
    })
}

/// Checks a frame's announced length before its body is read.
pub(crate) fn check_len(prefix: [u8; 4], max: usize) -> io::Result<usize> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(too_large(len, max));
    }
    Ok(len)
}

fn too_large(len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {len} bytes is over the {max}-byte limit"),
    )
}

pub(crate) async fn read_frame<T, R>(io: &mut R, max: usize) -> io::Result<T>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = check_len(prefix, max)?;
    // Grown as bytes arrive, not reserved from the prefix: a peer that announces a large
    // frame and sends nothing makes us hold nothing.
    let mut body = Vec::new();
    io.take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    decode_body(&body)
}

async fn write_frame<T, W>(io: &mut W, message: &T, max: usize) -> io::Result<()>
where
    T: Serialize,
    W: AsyncWrite + Unpin + Send,
{
    let frame = encode_frame(message, max)?;
    io.write_all(&frame).await?;
    io.flush().await
}

/// The request-response codec of [`PROTOCOL`].
#[derive(Debug, Clone)]
pub(crate) struct FrameCodec {
    /// Largest frame body accepted or sent.
    pub(crate) max_frame: usize,
}

impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_frame).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_frame).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request, self.max_frame).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, self.max_frame).await
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::{ArgSpec, TaskKey, TaskSpec};

    fn body(frame: &[u8]) -> &[u8] {
        let len = check_len(frame[..4].try_into().unwrap(), usize::MAX).unwrap();
        assert_eq!(len, frame.len() - 4, "the prefix states the body's length");
        &frame[4..]
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_from_its_prefix() {
        let error = check_len(u32::MAX.to_be_bytes(), 1 << 20).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(
            error.to_string().contains("over the 1048576-byte limit"),
            "{error}"
        );
        let big = Response::Value(vec![7; 100]);
        assert!(encode_frame(&big, 50).is_err(), "nor is one sent");
    }

    #[test]
    fn reading_a_huge_announced_frame_fails_without_reading_on() {
        let mut bytes: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let result: io::Result<Request> =
            futures_util::FutureExt::now_or_never(read_frame(&mut bytes, 1024)).unwrap();
        assert!(result.is_err());
        assert_eq!(bytes, &[1, 2, 3], "the body was not read");
    }

    fn request() -> impl Strategy<Value = Request> {
        let key = (any::<u64>(), any::<u64>()).prop_map(|(owner, seq)| TaskKey { owner, seq });
        let arg = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(ArgSpec::Inline),
            (key.clone(), any::<u64>()).prop_map(|(task, holder)| ArgSpec::Fetch { task, holder }),
        ];
        let spec = (
            key.clone(),
            "[a-z:_]{0,20}",
            any::<u64>(),
            proptest::collection::vec(arg, 0..4),
        )
            .prop_map(|(key, name, fingerprint, args)| TaskSpec {
                key,
                name: name.into(),
                fingerprint,
                args: args.into(),
                hops: 0,
                calls: Default::default(),
            });
        prop_oneof![
            (any::<u32>(), proptest::collection::vec(any::<u64>(), 0..8))
                .prop_map(|(max, can_run)| Request::Steal { max, can_run }),
            key.clone().prop_map(|task| Request::Fetch { task }),
            proptest::collection::vec(key, 0..8).prop_map(|release| Request::Notify {
                done: Vec::new(),
                release,
                moved: Vec::new(),
            }),
            proptest::collection::vec(spec, 0..3).prop_map(|specs| Request::Steal {
                max: specs.len() as u32,
                can_run: specs.iter().map(|s| s.fingerprint).collect(),
            }),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(request in request()) {
            let frame = encode_frame(&request, 1 << 20).unwrap();
            prop_assert_eq!(decode_body::<Request>(body(&frame)).unwrap(), request);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_body::<Request>(&bytes);
            let _ = decode_body::<Response>(&bytes);
            let _ = decode_body::<crate::wire::Batch>(&bytes);
        }
    }
}
