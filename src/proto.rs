//! Generated contracts (see `build.rs`).

#![allow(clippy::all, missing_docs)]

pub mod notification {
    pub mod v1 {
        tonic::include_proto!("switchboard.notification.v1");
    }
}

pub mod conversation {
    pub mod v1 {
        tonic::include_proto!("switchboard.conversation.v1");
    }
}

/// Encoded `FileDescriptorSet` of both contracts and their imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/switchboard_descriptor.bin"));
