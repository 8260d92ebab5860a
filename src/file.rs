//! Reads the small files that checks, secret references and the configuration name, with a
//! size limit and without blocking on a FIFO.
//!
//! A plain `read` of a FIFO with no writer blocks its thread for good, and a plain read of a
//! huge file takes as much memory as the file is large. A check runs again every interval, so
//! either fault would pile up until the exporter stops serving. These functions open the file
//! without blocking, accept only regular files (symbolic links are followed, as Kubernetes
//! mounts them), and read at most `limit` bytes.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Sign-off files, certificate files and CA bundles may be at most this large: 16 MiB, far
/// above a CA bundle of every public root (about 200 KiB).
pub const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;

/// Errors from [`read_limited`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The path names something other than a regular file.
    #[error("not a regular file but a {0}")]
    NotRegular(&'static str),
    /// The file is larger than the limit.
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

/// Reads the regular file at `path`, failing when it contains more than `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    // O_NONBLOCK makes opening a FIFO return at once; regular files ignore the flag.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(ReadError::NotRegular(describe(&file_type)));
    }
    let mut bytes = Vec::new();
    // One byte more than the limit tells a file at the limit from a larger one.
    File::take(file, limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

/// [`read_limited`] on tokio's blocking pool, for checks.
pub async fn read_limited_async(path: PathBuf, limit: u64) -> Result<Vec<u8>, ReadError> {
    tokio::task::spawn_blocking(move || read_limited(&path, limit))
        .await
        .unwrap_or_else(|err| Err(ReadError::Io(std::io::Error::other(err))))
}

/// Reads a file as [`read_limited`] does and decodes it as UTF-8.
pub fn read_limited_to_string(path: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read_limited(path, limit)?;
    String::from_utf8(bytes).map_err(|_| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

fn describe(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_file_within_limit_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::write(&path, "12345").unwrap();
        assert_eq!(read_limited(&path, 5).unwrap(), b"12345");
    }

    #[test]
    fn file_over_limit_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large");
        std::fs::write(&path, "123456").unwrap();
        let err = read_limited(&path, 5).unwrap_err();
        assert_eq!(err.to_string(), "larger than the limit of 5 bytes");
    }

    #[test]
    fn huge_sparse_file_not_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        assert!(matches!(
            read_limited(&path, MAX_DOCUMENT_BYTES),
            Err(ReadError::TooLarge { .. })
        ));
    }

    #[test]
    fn fifo_without_writer_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let err = read_limited(&path, 1024).unwrap_err();
        assert_eq!(err.to_string(), "not a regular file but a FIFO");
    }

    #[test]
    fn directory_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_limited(dir.path(), 1024).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular("directory")), "{err}");
    }
}
