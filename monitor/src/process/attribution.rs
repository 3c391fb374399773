//! Who a process acts for: its context and its agent, decided at exec from policy
//! (docs/records.md, `process.context` and `process.agent`).
//!
//! Context, first that applies: a tool server of an MCP configuration, started by an agent
//! from the command line its user's configuration gives (`tool:<server>`; its children stay
//! in it unless they declare a label of their own); the label variable in the exec
//! environment (a label cannot claim a tool's context: `tool:x` is taken as `label:tool:x`);
//! the first `[[contexts]]` rule that matches; the parent's context. A process with none of
//! these is in its originating user's login session (`uid:N/session:S`, see
//! `Process::record`).
//!
//! Agent: an ancestor's agent is kept; else a process matching an `[[agents]]` rule is the root
//! of its own; else a labelled task whose parent carries another label (or none) belongs to
//! the agent that started it, its parent, so tasks started by one parent share one agent.
use super::Process;
use crate::{
    catalog::contents::mcp::ToolCommand,
    policy::{Policy, ProcessFacts},
    vocab::AgentRef,
};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attribution {
    /// The value of the label variable, when set.
    pub label: Option<String>,
    /// The context this process has other than by default (see the module doc).
    pub context: Option<String>,
    pub agent: Option<AgentRef>,
}

/// What attribution is shown of the exec'ing process.
pub struct Candidate<'a> {
    pub pid: u32,
    pub uid: u32,
    pub originating_uid: u32,
    pub facts: ProcessFacts<'a>,
    pub label: Option<&'a str>,
}

/// `tools`: the local servers of the MCP configurations the catalog found.
pub fn attribute(
    policy: &Policy,
    tools: &[ToolCommand],
    me: &Candidate,
    parent: Option<&Process>,
) -> Attribution {
    let label = me.label.filter(|l| !l.is_empty()).map(|l| {
        if l.starts_with("tool:") {
            format!("label:{l}")
        } else {
            l.to_owned()
        }
    });
    let agent = agent_of(policy, me, parent, &label);
    // A tool's context holds for its children unless they carry a label the tool did not.
    let in_tool = parent
        .filter(|p| p.attribution.label == label)
        .and_then(|p| p.attribution.context.clone())
        .filter(|c| c.starts_with("tool:"));
    // Started by the agent itself (the process at the root of its tree), as its user's
    // configuration says.
    let by_agent = agent
        .as_ref()
        .is_some_and(|a| parent.is_some_and(|p| p.key.pid == a.pid));
    let tool = tools
        .iter()
        .filter(|_| by_agent)
        .find(|t| t.owner == me.uid && t.matches(me.facts.argv))
        .map(|t| format!("tool:{}", t.name));
    let context = tool
        .or(in_tool)
        .or_else(|| label.clone())
        .or_else(|| context_by_rule(policy, me))
        .or_else(|| parent.and_then(|p| p.attribution.context.clone()));
    Attribution {
        label,
        context,
        agent,
    }
}

fn agent_of(
    policy: &Policy,
    me: &Candidate,
    parent: Option<&Process>,
    label: &Option<String>,
) -> Option<AgentRef> {
    parent
        .and_then(|p| p.attribution.agent.clone())
        .or_else(|| {
            policy
                .agents
                .iter()
                .map(|a| a.get_ref())
                .find(|a| a.matcher.matches(&me.facts))
                .map(|a| AgentRef {
                    name: a.name.clone(),
                    pid: me.pid,
                })
        })
        .or_else(|| {
            let parent = parent?;
            (label.is_some() && parent.attribution.label != *label).then(|| AgentRef {
                name: parent.comm.clone(),
                pid: parent.key.pid,
            })
        })
}

fn context_by_rule(policy: &Policy, me: &Candidate) -> Option<String> {
    policy
        .contexts
        .iter()
        .map(|r| r.get_ref())
        .find_map(|rule| {
            if let Some(glob) = &rule.cgroup {
                let cgroup = me.facts.cgroup?;
                glob.matches(cgroup).then(|| format!("cgroup:{cgroup}"))
            } else if let Some(root) = &rule.root {
                root.matches(&me.facts)
                    .then(|| format!("{}:{}", me.facts.comm, me.pid))
            } else {
                (rule.user == Some(true)).then(|| format!("user:{}", me.originating_uid))
            }
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::process::ProcKey;

    fn candidate<'a>(
        pid: u32,
        comm: &'a str,
        argv: &'a [String],
        label: Option<&'a str>,
    ) -> Candidate<'a> {
        Candidate {
            pid,
            uid: 1000,
            originating_uid: 1000,
            facts: ProcessFacts {
                comm,
                exe: "",
                argv,
                cgroup: Some("/user.slice/user-1000.slice/session-3.scope"),
            },
            label,
        }
    }

    /// A tool server is in its tool's context when the agent itself starts it from its user's
    /// configuration; its children stay there; a label cannot claim a tool's context, and a
    /// process further down the tree, or of another user's configuration, is no tool.
    #[test]
    fn tool_servers_started_by_the_agent_are_in_their_tools_context() {
        let policy = Policy::embedded();
        let tools = [ToolCommand {
            name: "github".into(),
            command: vec!["python3".into(), "server.py".into()],
            owner: 1000,
        }];
        let agent_argv = vec!["claude".to_owned()];
        let a = attribute(
            &policy,
            &tools,
            &candidate(20, "claude", &agent_argv, None),
            None,
        );
        let agent = process(20, "claude", a);
        let server_argv = vec!["python3".to_owned(), "server.py".to_owned()];
        let server = attribute(
            &policy,
            &tools,
            &candidate(21, "python3", &server_argv, None),
            Some(&agent),
        );
        assert_eq!(server.context.as_deref(), Some("tool:github"));
        let child = attribute(
            &policy,
            &tools,
            &candidate(22, "node", &[], None),
            Some(&process(21, "python3", server.clone())),
        );
        assert_eq!(
            child.context.as_deref(),
            Some("tool:github"),
            "children stay"
        );
        let deeper = attribute(
            &policy,
            &tools,
            &candidate(23, "python3", &server_argv, None),
            Some(&process(
                22,
                "sh",
                Attribution {
                    agent: server.agent.clone(),
                    ..Attribution::default()
                },
            )),
        );
        assert_eq!(deeper.context, None, "not started by the agent itself");
        let claimed = attribute(
            &policy,
            &tools,
            &candidate(24, "curl", &[], Some("tool:github")),
            Some(&agent),
        );
        assert_eq!(claimed.context.as_deref(), Some("label:tool:github"));
        let others = [ToolCommand {
            owner: 1001,
            ..tools[0].clone()
        }];
        let foreign = attribute(
            &policy,
            &others,
            &candidate(25, "python3", &server_argv, None),
            Some(&agent),
        );
        assert_eq!(foreign.context, None, "another user's configuration");
    }

    fn process(pid: u32, comm: &str, attribution: Attribution) -> Process {
        let mut p = Process::unknown(ProcKey { pid, start: 1 }, 1, comm, 1000);
        p.image_mut().attribution = attribution;
        p
    }

    #[test]
    fn tasks_started_by_one_parent_share_its_agent() {
        let policy = Policy::embedded();
        let parent = process(10, "python3", Attribution::default());
        let a = attribute(
            &policy,
            &[],
            &candidate(11, "cat", &[], Some("task-1")),
            Some(&parent),
        );
        assert_eq!(a.context.as_deref(), Some("task-1"));
        assert_eq!(
            a.agent,
            Some(AgentRef {
                name: "python3".into(),
                pid: 10
            })
        );
        // A child of the task, without the label, inherits context and agent.
        let task = process(11, "cat", a.clone());
        let child = attribute(&policy, &[], &candidate(12, "curl", &[], None), Some(&task));
        assert_eq!(child, Attribution { label: None, ..a });
        // An unlabelled process outside any agent has neither.
        let plain = attribute(
            &policy,
            &[],
            &candidate(13, "bash", &[], None),
            Some(&parent),
        );
        assert_eq!(plain, Attribution::default());
    }

    #[test]
    fn matched_agents_are_roots_and_stay_roots() {
        let policy = Policy::embedded();
        let argv = vec!["node".to_owned(), "/usr/local/bin/claude".to_owned()];
        let a = attribute(&policy, &[], &candidate(20, "node", &argv, None), None);
        assert_eq!(a.agent.as_ref().unwrap().name, "coding-agent");
        let agent = process(20, "node", a.clone());
        let task = attribute(
            &policy,
            &[],
            &candidate(21, "sh", &[], Some("t1")),
            Some(&agent),
        );
        assert_eq!(
            task.agent, a.agent,
            "the matched agent, not the task's parent"
        );
    }

    #[test]
    fn context_rules_come_after_the_label() {
        let policy = Policy::parse(
            "[[contexts]]\ncgroup = \"/user.slice/*\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let a = attribute(&policy, &[], &candidate(5, "sh", &[], None), None);
        assert_eq!(
            a.context.as_deref(),
            Some("cgroup:/user.slice/user-1000.slice/session-3.scope")
        );
        let a = attribute(&policy, &[], &candidate(5, "sh", &[], Some("t9")), None);
        assert_eq!(a.context.as_deref(), Some("t9"));
    }
}
