//! Which methods stream, read from the contracts' descriptors rather than listed by hand, so
//! a new RPC needs no gateway change.

use std::collections::HashSet;

use prost::Message;
use prost_types::FileDescriptorSet;
use switchboard::proto::FILE_DESCRIPTOR_SET;

/// `/package.Service/Method` of every server-streaming method of the contracts.
pub fn server_streaming() -> anyhow::Result<HashSet<String>> {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)?;
    let mut paths = HashSet::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                if method.server_streaming() {
                    paths.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    #[test]
    fn subscribe_streams_and_nothing_else() {
        let paths = super::server_streaming().unwrap();
        assert_eq!(
            paths.into_iter().collect::<Vec<_>>(),
            ["/switchboard.notification.v1.NotificationService/Subscribe"]
        );
    }
}
