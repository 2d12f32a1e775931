//! Where report files live: a local directory (`file:///dir`, created at
//! start) or an S3 bucket (`s3://bucket/prefix`), through `object_store`.
//!
//! A report is written to a temporary file first, then published under its
//! final key in one step. On S3, a multipart upload that becomes visible
//! only when completed (`CompleteMultipartUpload`). In a local directory,
//! the temporary file is written in the store's own staging directory and
//! renamed into place, so the bytes are written once and never copied (the
//! copy was a fifth of a CSV report's time; bench/RESULTS.md). A worker killed while
//! writing or uploading leaves no file under the key, and its redelivery
//! publishes exactly one.

use std::{
    io,
    ops::Range,
    path::{Path as FsPath, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use hangar_shared::config::ReportsConfig;
use object_store::{ObjectStore, WriteMultipart, aws::AmazonS3Builder, local::LocalFileSystem, path::Path};
use tokio::io::AsyncReadExt;

/// Bytes read from the temporary file per upload part (S3 wants at least
/// 5 MiB for every part but the last).
const PART: usize = 8 * 1024 * 1024;

/// The report store.
#[derive(Clone)]
pub struct ReportStore {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    /// A local store's directory.
    local_root: Option<PathBuf>,
}

/// A local store's directory for reports being written, inside the store
/// so that publishing is a rename on the same file system.
const STAGING: &str = ".staging";

impl std::fmt::Debug for ReportStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportStore").field("url", &self.url).finish()
    }
}

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not one the store understands.
    #[error("HANGAR_REPORTS_URL {0:?} is neither file:///absolute/dir nor s3://bucket[/prefix]")]
    Url(String),
    /// No file under that key.
    #[error("no report file {0}")]
    NotFound(String),
    /// The store failed (unreachable, refused).
    #[error("report store: {0}")]
    Store(#[from] object_store::Error),
    /// A local file could not be read or written.
    #[error("report file: {0}")]
    Io(#[from] std::io::Error),
}

impl ReportStore {
    /// Opens the store at `config.url`; a local directory is created if
    /// missing. S3 uses the AWS settings the configuration was given, and
    /// for what they leave out the usual chain (environment, web identity,
    /// container and instance credentials).
    pub fn open(config: &ReportsConfig) -> Result<Self, StoreError> {
        let url = config.url.as_str();
        if let Some(dir) = url.strip_prefix("file://").filter(|d| d.starts_with('/')) {
            std::fs::create_dir_all(FsPath::new(dir).join(STAGING))?;
            let fs = LocalFileSystem::new_with_prefix(dir)?;
            return Ok(Self {
                inner: Arc::new(fs),
                prefix: Path::default(),
                url: url.to_owned(),
                local_root: Some(dir.into()),
            });
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Url(url.to_owned()));
        }
        let s3 = &config.s3;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(s3.region.as_deref().unwrap_or("us-east-1"));
        if let Some(endpoint) = &s3.endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint)
                // Emulators and most S3-compatible stores address buckets by path.
                .with_virtual_hosted_style_request(false);
        }
        if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret.expose());
            if let Some(token) = &s3.session_token {
                builder = builder.with_token(token.expose());
            }
        }
        Ok(Self {
            inner: Arc::new(builder.build()?),
            prefix: Path::from(prefix.trim_matches('/')),
            url: url.to_owned(),
            local_root: None,
        })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.as_ref().is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Where report files are written before they are published: the
    /// store's staging directory for a local store, the system's temporary
    /// directory otherwise.
    pub fn staging_dir(&self) -> PathBuf {
        match &self.local_root {
            Some(root) => root.join(STAGING),
            None => std::env::temp_dir(),
        }
    }

    /// Publishes the local file `file` under `key`, replacing any earlier
    /// file there; visible only once complete. A local store takes the file
    /// itself (renamed into place); S3 gets a copy. Returns the bytes stored.
    pub async fn publish(&self, key: &str, file: &FsPath) -> Result<u64, StoreError> {
        if let Some(root) = &self.local_root {
            let (file, target, staging) = (file.to_owned(), root.join(key), self.staging_dir());
            return tokio::task::spawn_blocking(move || rename_into_place(&file, &target, &staging))
                .await
                .map_err(io::Error::other)?
                .map_err(StoreError::from);
        }
        let upload = self.inner.put_multipart(&self.path(key)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut source = tokio::fs::File::open(file).await?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = match source.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if n == 0 {
                break;
            }
            // Bounds the parts in flight (memory), two at a time.
            writer.wait_for_capacity(2).await?;
            writer.write(&buf[..n]);
            total += n as u64;
        }
        writer.finish().await?;
        Ok(total)
    }

    /// The file's size.
    pub async fn size(&self, key: &str) -> Result<u64, StoreError> {
        match self.inner.head(&self.path(key)).await {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NotFound(key.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// `range` of the file (or all of it), as a stream of chunks.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, object_store::Result<Bytes>>, StoreError> {
        let options = object_store::GetOptions {
            range: range.map(Into::into),
            ..Default::default()
        };
        match self.inner.get_opts(&self.path(key), options).await {
            Ok(got) => Ok(got.into_stream()),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NotFound(key.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the file; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Moves `file` to `target` durably: its bytes on disk first, then the
/// rename, then the directory entry. A file on another file system is first
/// copied into `staging` (same file system as `target`), so the final step
/// is always one rename and never shows a partial file.
fn rename_into_place(file: &FsPath, target: &FsPath, staging: &FsPath) -> io::Result<u64> {
    let dir = target.parent().unwrap_or(staging);
    std::fs::create_dir_all(dir)?;
    let source = std::fs::File::open(file)?;
    source.sync_all()?;
    let size = source.metadata()?.len();
    match std::fs::rename(file, target) {
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let copy = staging.join(format!("copy-{}", ulid::Ulid::new()));
            let copied = std::fs::copy(file, &copy).and_then(|_| {
                std::fs::File::open(&copy)?.sync_all()?;
                std::fs::rename(&copy, target)
            });
            if copied.is_err() {
                let _ = std::fs::remove_file(&copy);
            }
            copied?;
            let _ = std::fs::remove_file(file);
        }
        other => other?,
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    fn config(url: &str) -> ReportsConfig {
        ReportsConfig {
            url: url.to_owned(),
            retention_days: 1,
            ..Default::default()
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hangar-store-{name}-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    async fn read_all(store: &ReportStore, key: &str, range: Option<Range<u64>>) -> Vec<u8> {
        let chunks: Vec<Bytes> = store.read(key, range).await.unwrap().try_collect().await.unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn a_local_store_publishes_whole_files_and_serves_ranges() {
        let root = temp_dir("root");
        let store = ReportStore::open(&config(&format!("file://{}/reports", root.display()))).unwrap();
        // From another file system where there is one (tmpfs): copied in.
        let other = FsPath::new("/dev/shm");
        let src = if other.is_dir() {
            other.into()
        } else {
            temp_dir("src")
        }
        .join(format!("hangar-store-{}.csv", ulid::Ulid::new()));
        let body: Vec<u8> = (0..(PART * 2 + 1000)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &body).unwrap();
        assert_eq!(
            store.publish("2026/r.csv", &src).await.unwrap(),
            body.len() as u64
        );
        assert_eq!(store.size("2026/r.csv").await.unwrap(), body.len() as u64);
        assert_eq!(read_all(&store, "2026/r.csv", None).await, body);
        assert_eq!(read_all(&store, "2026/r.csv", Some(10..20)).await, body[10..20]);
        assert!(!src.exists());
        assert_eq!(std::fs::read_dir(store.staging_dir()).unwrap().count(), 0);
        // Published again: replaced whole, not appended. The file is
        // taken, not copied.
        let staged = store.staging_dir().join("r2.csv");
        std::fs::write(&staged, b"short").unwrap();
        store.publish("2026/r.csv", &staged).await.unwrap();
        assert_eq!(read_all(&store, "2026/r.csv", None).await, b"short");
        assert!(!staged.exists());
        store.delete("2026/r.csv").await.unwrap();
        assert!(matches!(
            store.size("2026/r.csv").await,
            Err(StoreError::NotFound(_))
        ));
        store.delete("2026/r.csv").await.unwrap();
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn urls_other_than_a_directory_or_a_bucket_are_refused() {
        for bad in ["reports", "file://relative", "s3://", "http://x/y"] {
            assert!(
                matches!(ReportStore::open(&config(bad)), Err(StoreError::Url(_))),
                "{bad}"
            );
        }
    }
}
