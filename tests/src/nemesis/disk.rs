//! A small disk for one broker: a tmpfs mounted with `size=` on a temporary directory, the
//! broker's data directory inside it. [`SmallDisk::fill`] writes a file of zeros until the
//! kernel answers ENOSPC, so every write of the broker fails the same way as on a full
//! volume; [`SmallDisk::free`] removes that file. Dropping a [`SmallDisk`] (also while a
//! test panics) unmounts it; the owner stops the broker using it first.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The file that takes up the free space.
const FILLER: &str = "nemesis-filler";

/// Why a tmpfs cannot be mounted here, or `None` when it can.
pub fn unavailable_reason() -> Option<String> {
    if !super::is_root() {
        return Some("not running as root (mounting a tmpfs needs CAP_SYS_ADMIN)".into());
    }
    None
}

/// A mounted tmpfs. Invariant: `mounted` is true from a successful mount until drop.
#[derive(Debug)]
pub struct SmallDisk {
    mount_point: TempDir,
    mounted: bool,
    size_bytes: u64,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size_bytes`. Panics when `mount` fails.
    pub fn mount(size_bytes: u64) -> SmallDisk {
        let mount_point = tempfile::Builder::new()
            .prefix("weir-nemesis-disk-")
            .tempdir()
            .expect("creating a mount point");
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_bytes}"),
                "weir-nemesis",
            ])
            .arg(mount_point.path())
            .output()
            .expect("running mount");
        assert!(
            output.status.success(),
            "mount -t tmpfs on {}: {}",
            mount_point.path().display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        SmallDisk {
            mount_point,
            mounted: true,
            size_bytes,
        }
    }

    /// The broker's data directory on this disk.
    pub fn data_dir(&self) -> PathBuf {
        self.mount_point.path().join("data")
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn filler(&self) -> PathBuf {
        self.mount_point.path().join(FILLER)
    }

    /// Writes zeros until the disk is full; returns how many bytes it took.
    pub fn fill(&self) -> u64 {
        let mut file = File::create(self.filler()).expect("creating the filler file");
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == ErrorKind::StorageFull => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("filling {}: {e}", self.filler().display()),
            }
        }
        written
    }

    /// Frees what [`SmallDisk::fill`] took.
    pub fn free(&self) {
        match std::fs::remove_file(self.filler()) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", self.filler().display()),
        }
    }

    /// Bytes used on the disk (by the broker and the filler), from statvfs.
    pub fn used_bytes(&self) -> u64 {
        used_bytes(self.mount_point.path())
    }
}

fn used_bytes(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| (s.blocks() - s.blocks_free()) * s.fragment_size())
        .unwrap_or(0)
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let path = self.mount_point.path();
        let ok = Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file open on it: detach now, the kernel frees it later.
            let _ = Command::new("umount").arg("-l").arg(path).status();
        }
        self.mounted = false;
    }
}
