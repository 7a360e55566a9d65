//! Raw file access under the sysfs root: the one I/O seam of the layer.

use std::{io, path::Path};

/// Raw file access under the sysfs root. [`RealSysfs`] uses the filesystem;
/// tests substitute their own to simulate kernel behaviour and errnos.
pub trait SysfsIo: Send + Sync {
    /// Reads a whole attribute.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `value` to an attribute in a single `write(2)`, as sysfs needs.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Names of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
}

/// [`SysfsIo`] on the real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSysfs;

impl SysfsIo for RealSysfs {
    fn read(&self, path: &Path) -> io::Result<String> {
        use std::io::Read as _;
        // Big reads: some files (debugfs block_state) return nothing when
        // a line does not fit the buffer, as a small first read would.
        let mut f = std::fs::File::open(path)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        // One write(2): sysfs store handlers see the whole value at once.
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write to sysfs",
            ));
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}
