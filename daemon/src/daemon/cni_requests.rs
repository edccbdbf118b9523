//! The daemon's answers to `netseg-cni`: ADD attaches the pod's interface
//! at once and replies only once the pod's own policy is enforced there.

use netseg_cni::wire::{Attachment, AttachmentId, Reply, Request};
use netseg_policy::PodRef;

use super::Daemon;
use crate::{cni, node::NodeView};

impl Daemon {
    /// What the CNI plugin asked, answered once done: an ADD only when the
    /// pod's policy is published on its attached interface.
    pub(super) fn answer(&mut self, request: Request, view: &NodeView) -> Reply {
        match request {
            Request::Add(attachment) => {
                let (name, ifindex) = match cni::resolve_interface(&attachment, view) {
                    Ok(interface) => interface,
                    Err(error) => return Reply::refused(error.to_string()),
                };
                // Attached before anything is compiled: until the pod's
                // policy is published there, it has no endpoint and denies
                // everything, however long compiling takes.
                if let Err(error) = self.datapath.attach(&name, ifindex) {
                    return Reply::refused(format!("{:#}", anyhow::Error::from(error)));
                }
                if self.cni.add(&attachment, (name, ifindex)) {
                    self.enforcer.recompile();
                }
                self.reconcile(view);
                self.check(&attachment)
            }
            Request::Check(attachment) => self.check(&attachment),
            Request::Del(id) => {
                if self.cni.remove(&id) {
                    self.enforcer.recompile();
                    self.reconcile(view);
                }
                Reply::done()
            }
            Request::Status => match self.enforcer.publish_problem() {
                None => Reply::done(),
                Some(problem) => Reply::refused(problem.to_owned()),
            },
        }
    }

    /// Whether the pod of `attachment` is enforced on the interface ADD found for it.
    fn check(&self, attachment: &Attachment) -> Reply {
        let pod = PodRef::new(attachment.namespace.as_str(), attachment.name.as_str());
        let id: &AttachmentId = &attachment.id;
        let Some((_, ifindex)) = self.cni.get(id) else {
            return Reply::refused(format!("no attachment {id:?} (its interface is gone)"));
        };
        if let Some(problem) = self.enforcer.publish_problem() {
            return Reply::refused(format!("the policy is not published: {problem}"));
        }
        match self.served.get(&ifindex) {
            Some(served) if *served == pod => Reply::done(),
            Some(other) => {
                Reply::refused(format!("interface {ifindex} enforces {other}, not {pod}"))
            }
            None => Reply::refused(format!(
                "no policy for {pod} on interface {ifindex}: is it valid, with addresses, on this node?"
            )),
        }
    }
}
