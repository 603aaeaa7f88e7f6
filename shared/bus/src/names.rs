//! Subject and stream names under one prefix, so tests and tenants never collide.

/// The naming scheme: `{prefix}.events.<service>.<entity>.<action>` in stream `{PREFIX}_EVENTS`,
/// `{prefix}.api.<service>.<op>` for request/reply, `{prefix}.cmd.<executor>.<verb>` for commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// `SW_EVENTS` for prefix `sw`.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_ascii_uppercase())
    }
    /// `sw.events.>`.
    pub fn events_wildcard(&self) -> String {
        format!("{}.events.>", self.prefix)
    }
    /// `sw.events.appmeta.app.created` for `appmeta.app.created`.
    pub fn event_subject(&self, name: &str) -> String {
        format!("{}.events.{name}", self.prefix)
    }
    /// `SW_COMMANDS` for prefix `sw`: the work queue of commands to executors.
    pub fn commands_stream(&self) -> String {
        format!("{}_COMMANDS", self.prefix.to_ascii_uppercase())
    }
    /// `sw.cmd.>`.
    pub fn commands_wildcard(&self) -> String {
        format!("{}.cmd.>", self.prefix)
    }
    /// `sw.cmd.k8s.apply` for `k8s.apply` (`<executor>.<verb>`).
    pub fn command_subject(&self, name: &str) -> String {
        format!("{}.cmd.{name}", self.prefix)
    }
    /// `sw.api.appmeta`.
    pub fn api_group(&self, service: &str) -> String {
        format!("{}.api.{service}", self.prefix)
    }
    /// `sw.api.appmeta.apps.get`.
    pub fn api_subject(&self, service: &str, op: &str) -> String {
        format!("{}.api.{service}.{op}", self.prefix)
    }
    /// `sw.dlq.SW_EVENTS`.
    pub fn dlq_subject(&self, stream: &str) -> String {
        format!("{}.dlq.{stream}", self.prefix)
    }
    /// Redis-style service name for the NATS services API (`[A-Za-z0-9_-]+`).
    pub fn service_name(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix.replace('_', "-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_matches_the_design() {
        let n = Names::new("sw");
        assert_eq!(n.events_stream(), "SW_EVENTS");
        assert_eq!(n.events_wildcard(), "sw.events.>");
        assert_eq!(n.event_subject("appmeta.app.created"), "sw.events.appmeta.app.created");
        assert_eq!(n.api_subject("auth", "token"), "sw.api.auth.token");
        assert_eq!(n.service_name("auth"), "sw-auth");
        assert_eq!(n.commands_stream(), "SW_COMMANDS");
        assert_eq!(n.commands_wildcard(), "sw.cmd.>");
        assert_eq!(n.command_subject("k8s.apply"), "sw.cmd.k8s.apply");
        assert_eq!(n.command_subject("k8s.delete"), "sw.cmd.k8s.delete");
    }

    /// Test prefixes (`t` + hex) give streams and subjects of their own, disjoint from `sw`'s.
    #[test]
    fn a_test_prefix_never_overlaps_the_default() {
        let t = Names::new("t0123abcdef");
        assert_eq!(t.commands_stream(), "T0123ABCDEF_COMMANDS");
        assert_eq!(t.command_subject("k8s.delete"), "t0123abcdef.cmd.k8s.delete");
        assert!(!t.command_subject("k8s.apply").starts_with("sw."));
        // Commands and events never share a subject space, so each lands in its own stream.
        assert!(!t.command_subject("x").starts_with(t.events_wildcard().trim_end_matches('>')));
    }
}
