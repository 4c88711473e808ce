//! Which methods stream, read from the contracts' descriptors rather than listed by hand, so
//! a new RPC needs no gateway change.

use std::collections::HashSet;

use prost::Message;
use prost_types::FileDescriptorSet;
use switchboard::proto::FILE_DESCRIPTOR_SET;

/// `/package.Service/Method` paths of the contracts' streaming methods.
#[derive(Debug, Default)]
pub struct Methods {
    /// Their responses stream: no unary deadline cap.
    server_streaming: HashSet<String>,
    /// Their requests stream: the request cannot be kept for a replay on another replica.
    client_streaming: HashSet<String>,
}

impl Methods {
    pub fn from_descriptors() -> anyhow::Result<Self> {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)?;
        let mut methods = Methods::default();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    if method.server_streaming() {
                        methods.server_streaming.insert(path.clone());
                    }
                    if method.client_streaming() {
                        methods.client_streaming.insert(path);
                    }
                }
            }
        }
        Ok(methods)
    }

    pub fn server_streams(&self, path: &str) -> bool {
        self.server_streaming.contains(path)
    }

    /// Unknown paths count as not streaming their request: the upstream answers UNIMPLEMENTED
    /// to those, and a gRPC request body of a method that does not stream ends.
    pub fn client_streams(&self, path: &str) -> bool {
        self.client_streaming.contains(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_streams_its_response_and_nothing_streams_requests() {
        let methods = Methods::from_descriptors().unwrap();
        assert_eq!(
            methods.server_streaming.iter().collect::<Vec<_>>(),
            ["/switchboard.notification.v1.NotificationService/Subscribe"]
        );
        assert!(methods.client_streaming.is_empty());
        assert!(
            methods.server_streams("/switchboard.notification.v1.NotificationService/Subscribe")
        );
        assert!(!methods.server_streams("/switchboard.notification.v1.NotificationService/List"));
    }
}
