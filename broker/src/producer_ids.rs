//! Producer ids for InitProducerId, unique across the cluster and across restarts.
//!
//! Ids come in blocks of [`PRODUCER_ID_BLOCK_SIZE`] that the controller hands out through the
//! metadata log (Kafka's AllocateProducerIds), so two brokers never give out the same id and a
//! restarted broker starts from a fresh block (it may skip ids, as Kafka does).

use parking_lot::Mutex;

use crate::controller::command::{CommandResult, MetadataCommand};
use crate::controller::image::PRODUCER_ID_BLOCK_SIZE;
use crate::controller::{Controller, ControllerError};

/// Allocates producer ids. Thread-safe.
#[derive(Debug, Default)]
pub struct ProducerIdManager {
    /// (next id to hand out, end of the block, exclusive)
    block: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    /// An allocator without a block yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next unused producer id, asking the controller for a block when needed.
    pub async fn next_id(&self, controller: &Controller) -> Result<i64, ControllerError> {
        loop {
            {
                let mut block = self.block.lock();
                if block.0 < block.1 {
                    let id = block.0;
                    block.0 += 1;
                    return Ok(id);
                }
            }
            let result = controller
                .write_ok(MetadataCommand::AllocateProducerIds {
                    broker_id: controller.node_id(),
                })
                .await?;
            let CommandResult::ProducerIds { start, len } = result else {
                return Err(ControllerError::Fatal(format!(
                    "unexpected result {result:?}"
                )));
            };
            debug_assert_eq!(len, PRODUCER_ID_BLOCK_SIZE);
            let mut block = self.block.lock();
            if block.0 >= block.1 {
                *block = (start, start + len);
            }
        }
    }
}
