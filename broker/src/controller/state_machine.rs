//! The metadata state machine: applies committed commands to the [`MetadataImage`] and
//! publishes each new image to the broker through a `watch` channel.
//!
//! Snapshots are the JSON of the image plus openraft's snapshot metadata, kept in
//! `<data-dir>/__cluster_metadata/snapshot.json` (replaced atomically). On start the image is
//! loaded from the snapshot and openraft re-applies the committed entries after it, so the
//! image itself needs no other file.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::command::CommandResult;
use super::image::MetadataImage;
use super::types::{NodeId, QuorumNode, TypeConfig};
use crate::log::write_atomically;

const SNAPSHOT_FILE: &str = "snapshot.json";

type Membership = StoredMembership<NodeId, QuorumNode>;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, QuorumNode>,
    image: MetadataImage,
}

/// The state machine. Cloning shares it.
#[derive(Debug, Clone)]
pub struct StateMachine {
    dir: PathBuf,
    inner: Arc<tokio::sync::Mutex<Inner>>,
    image_tx: Arc<watch::Sender<Arc<MetadataImage>>>,
}

#[derive(Debug)]
struct Inner {
    image: MetadataImage,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

impl StateMachine {
    /// Opens the state machine from the snapshot in `dir`, if any.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(SNAPSHOT_FILE);
        let snapshot: Option<StoredSnapshot> = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let (image, last_applied, membership) = match &snapshot {
            Some(s) => (
                s.image.clone(),
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (MetadataImage::default(), None, Membership::default()),
        };
        let (image_tx, _) = watch::channel(Arc::new(image.clone()));
        Ok(Self {
            dir: dir.to_path_buf(),
            inner: Arc::new(tokio::sync::Mutex::new(Inner {
                image,
                last_applied,
                membership,
                snapshot,
                snapshots_built: 0,
            })),
            image_tx: Arc::new(image_tx),
        })
    }

    /// A receiver of every new image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_tx.subscribe()
    }

    fn persist(&self, snapshot: &StoredSnapshot) -> std::io::Result<()> {
        let json = serde_json::to_vec(snapshot)?;
        write_atomically(&self.dir.join(SNAPSHOT_FILE), &json).map_err(std::io::Error::other)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut inner = self.inner.lock().await;
        inner.snapshots_built += 1;
        let snapshot_id = format!(
            "{}-{}",
            inner.last_applied.map_or(0, |l| l.index),
            inner.snapshots_built
        );
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
                snapshot_id,
            },
            image: inner.image.clone(),
        };
        self.persist(&stored).map_err(sm_err)?;
        let bytes = serde_json::to_vec(&stored.image).map_err(sm_err)?;
        let meta = stored.meta.clone();
        inner.snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut results = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::Ok,
                EntryPayload::Normal(ref command) => inner.image.apply(entry.log_id.index, command),
                EntryPayload::Membership(ref m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    CommandResult::Ok
                }
            };
            inner.image.applied_index = entry.log_id.index;
            results.push(result);
        }
        self.image_tx.send_replace(Arc::new(inner.image.clone()));
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, QuorumNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let image: MetadataImage = serde_json::from_slice(snapshot.get_ref()).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::new(&e),
            ))
        })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            image: image.clone(),
        };
        self.persist(&stored).map_err(sm_err)?;
        let mut inner = self.inner.lock().await;
        inner.image = image;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some(stored);
        self.image_tx.send_replace(Arc::new(inner.image.clone()));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock().await;
        let Some(stored) = &inner.snapshot else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec(&stored.image).map_err(sm_err)?;
        Ok(Some(Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
