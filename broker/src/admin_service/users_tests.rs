//! The user calls of the admin service against a one-broker cluster in-process: what they
//! write is what the Kafka APIs read (the same image), refusals are INVALID_ARGUMENT and
//! change nothing, and removals are idempotent.

use std::collections::HashMap;

use tonic::{Code, Request};
use weir_api::proto::admin as pb;
use weir_api::proto::admin::admin_server::Admin;

use super::tests::service;
use crate::controller::acl::{AclOperation, ResourceType};

fn write_orders(principal: &str) -> pb::AclBinding {
    pb::AclBinding {
        resource_type: "TOPIC".into(),
        resource_name: "orders".into(),
        pattern_type: "LITERAL".into(),
        principal: principal.into(),
        host: "*".into(),
        operation: "WRITE".into(),
        permission: "ALLOW".into(),
    }
}

fn credential(user: &str, iterations: i32) -> pb::SetScramCredentialRequest {
    pb::SetScramCredentialRequest {
        user: user.into(),
        mechanism: "SCRAM-SHA-512".into(),
        iterations,
        salt: b"salt".to_vec(),
        stored_key: vec![1; 64],
        server_key: vec![2; 64],
    }
}

/// The status code of an answer.
fn code<T>(r: Result<T, tonic::Status>) -> Code {
    r.map(|_| Code::Ok).unwrap_or_else(|e| e.code())
}

async fn describe(s: &super::AdminService, user: &str) -> pb::DescribeUserResponse {
    s.describe_user(Request::new(pb::DescribeUserRequest { user: user.into() }))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_written_where_the_kafka_apis_read_it_and_removed_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    s.set_scram_credential(Request::new(credential("alice", 8192)))
        .await
        .unwrap();
    s.create_acls(Request::new(pb::CreateAclsRequest {
        bindings: vec![write_orders("User:alice"), write_orders("User:bob")],
    }))
    .await
    .unwrap();
    s.alter_user_quotas(Request::new(pb::AlterUserQuotasRequest {
        user: "alice".into(),
        set: HashMap::from([("producer_byte_rate".into(), 1024.0)]),
        remove: vec![],
    }))
    .await
    .unwrap();

    // The image the Kafka handlers and the authorizer read holds all three.
    let image = s.broker.replicas.image();
    assert_eq!(
        image.scram_credentials["alice"]["SCRAM-SHA-512"].iterations,
        8192
    );
    let bindings: Vec<_> = image.acls.bindings().iter().collect();
    assert_eq!(bindings.len(), 2);
    assert!(bindings
        .iter()
        .all(|b| b.resource_type == ResourceType::Topic && b.operation == AclOperation::Write));
    let alice = describe(&s, "alice").await;
    assert_eq!(alice.scram_credentials.len(), 1);
    assert_eq!(alice.scram_credentials[0].mechanism, "SCRAM-SHA-512");
    assert_eq!(alice.acls, vec![write_orders("User:alice")], "only alice's");
    assert_eq!(alice.quotas.get("producer_byte_rate"), Some(&1024.0));
    let listed = s
        .describe_acls(Request::new(pb::DescribeAclsRequest {
            principal: "User:bob".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.bindings, vec![write_orders("User:bob")]);

    // Removed, twice: the second time there is nothing to remove and that is no error.
    for _ in 0..2 {
        s.delete_scram_credential(Request::new(pb::DeleteScramCredentialRequest {
            user: "alice".into(),
            mechanism: "SCRAM-SHA-512".into(),
        }))
        .await
        .unwrap();
        s.delete_acls(Request::new(pb::DeleteAclsRequest {
            bindings: vec![write_orders("User:alice")],
        }))
        .await
        .unwrap();
        s.alter_user_quotas(Request::new(pb::AlterUserQuotasRequest {
            user: "alice".into(),
            set: HashMap::new(),
            remove: vec!["producer_byte_rate".into()],
        }))
        .await
        .unwrap();
    }
    let alice = describe(&s, "alice").await;
    assert!(alice.scram_credentials.is_empty() && alice.acls.is_empty() && alice.quotas.is_empty());
    assert_eq!(describe(&s, "bob").await.acls.len(), 1, "bob's ACL stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_user_requests_are_invalid_arguments_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    assert_eq!(
        code(
            s.set_scram_credential(Request::new(credential("alice", 100)))
                .await
        ),
        Code::InvalidArgument,
        "too few iterations"
    );
    let mut unknown = credential("alice", 8192);
    unknown.mechanism = "SCRAM-SHA-1".into();
    assert_eq!(
        code(s.set_scram_credential(Request::new(unknown)).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(
            s.set_scram_credential(Request::new(credential("", 8192)))
                .await
        ),
        Code::InvalidArgument
    );
    let mut bad_operation = write_orders("User:alice");
    bad_operation.operation = "FLY".into();
    let mut bad_cluster = write_orders("User:alice");
    bad_cluster.resource_type = "CLUSTER".into();
    let bad_principal = write_orders("alice");
    for bad in [bad_operation, bad_cluster, bad_principal] {
        // One bad binding refuses the whole request.
        let r = s
            .create_acls(Request::new(pb::CreateAclsRequest {
                bindings: vec![write_orders("User:alice"), bad.clone()],
            }))
            .await;
        assert_eq!(code(r), Code::InvalidArgument, "{bad:?}");
    }
    for (key, value) in [
        ("controller_mutation_rate", -1.0),
        ("producer_byte_rate", 0.5),
    ] {
        let r = s
            .alter_user_quotas(Request::new(pb::AlterUserQuotasRequest {
                user: "alice".into(),
                set: HashMap::from([(key.to_string(), value)]),
                remove: vec![],
            }))
            .await;
        assert_eq!(code(r), Code::InvalidArgument, "{key}={value}");
    }
    let alice = describe(&s, "alice").await;
    assert!(alice.scram_credentials.is_empty() && alice.acls.is_empty() && alice.quotas.is_empty());
}
