//! ListGroups: every group this broker coordinates, optionally filtered by state (v4+) and
//! type (v5+; every Weir group is a `classic` group).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::text;
use crate::broker::Broker;
use crate::group::GroupState;

/// Answers ListGroups.
pub fn handle(broker: &Broker, request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let wants_classic = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let states: Vec<GroupState> = request
        .states_filter
        .iter()
        .filter_map(|s| GroupState::parse(s))
        .collect();
    // A filter naming only states no classic group has matches nothing.
    let nothing = !request.states_filter.is_empty() && states.is_empty();
    let listed = match broker.groups.list(&states) {
        Err(code) => {
            broker.count_error("ListGroups", code);
            return ListGroupsResponse::default().with_error_code(code);
        }
        Ok(_) if nothing || !wants_classic => Vec::new(),
        Ok(listed) => listed,
    };
    ListGroupsResponse::default().with_groups(
        listed
            .into_iter()
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(text(g.group_id)))
                    .with_protocol_type(text(g.protocol_type))
                    .with_group_state(text(if version >= 4 { g.state.name() } else { "" }))
                    .with_group_type(text(if version >= 5 { "classic" } else { "" }))
            })
            .collect(),
    )
}
