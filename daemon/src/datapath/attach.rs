//! Attaching both programs to a pod interface with tcx, holding the links
//! (owned, or pinned so they outlive the daemon), and taking over the links
//! a previous daemon pinned.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use aya::{
    Ebpf,
    programs::{
        TcAttachType,
        links::{FdLink, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
    },
};
use tracing::{error, info, warn};

use super::{
    Datapath, DatapathError, POD_EGRESS, POD_INGRESS, classifier,
    pins::{PinDir, PinError},
};

/// The two programs and the hook each goes on.
const HOOKS: [(&str, TcAttachType); 2] = [
    (POD_EGRESS, TcAttachType::Ingress),
    (POD_INGRESS, TcAttachType::Egress),
];

/// The loaded programs and the interfaces they are attached to: shared by
/// the daemon's loop and the thread that attaches links as rtnetlink
/// announces them ([`super::announced`]). Dropping it detaches everything
/// that is not pinned.
pub(super) struct Attachments {
    ebpf: Ebpf,
    attached: BTreeMap<String, Attachment>,
    pins: Option<PinDir>,
}

struct Attachment {
    ifindex: u32,
    links: Links,
}

enum Links {
    /// Detached when dropped.
    Owned(Vec<SchedClassifierLink>),
    /// Outlive the daemon; detached by unpinning.
    Pinned(Vec<PinnedLink>),
    /// Pinned by a previous daemon, still running its programs and maps
    /// until [`Datapath::take_over`] swaps ours in.
    Inherited,
}

/// The shared attachments, whoever panicked while holding them (every
/// change to them is a whole attach or detach).
pub(super) fn locked(attachments: &Mutex<Attachments>) -> MutexGuard<'_, Attachments> {
    attachments.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Attachments {
    pub(super) fn new(ebpf: Ebpf, pins: Option<PinDir>) -> Self {
        Self {
            ebpf,
            attached: BTreeMap::new(),
            pins,
        }
    }

    /// The loaded programs (for test runs).
    #[cfg(test)]
    pub(super) fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    /// The interfaces the programs are attached to, with their ifindex.
    pub(super) fn attached(&self) -> impl Iterator<Item = (&str, u32)> {
        self.attached
            .iter()
            .map(|(name, a)| (name.as_str(), a.ifindex))
    }

    /// Attaches both programs to `interface` unless they already are (for
    /// this ifindex: a re-created interface gets a fresh attachment). An
    /// interface a previous daemon pinned is adopted as it is, to be taken
    /// over once this daemon has published its policy.
    pub(super) fn attach(&mut self, interface: &str, ifindex: u32) -> Result<(), DatapathError> {
        match self.attached.get(interface) {
            Some(existing) if existing.ifindex == ifindex => return Ok(()),
            Some(_) => self.detach(interface),
            None => {}
        }
        let inherited = match &self.pins {
            Some(pins) => pins.pinned_ifindexes()?.contains(&ifindex),
            None => false,
        };
        let links = if inherited {
            info!(
                interface,
                ifindex, "adopted the pinned links of a previous daemon"
            );
            Links::Inherited
        } else {
            self.attach_new(interface, ifindex)?
        };
        self.attached
            .insert(interface.to_owned(), Attachment { ifindex, links });
        Ok(())
    }

    fn attach_new(&mut self, interface: &str, ifindex: u32) -> Result<Links, DatapathError> {
        let mut owned = Vec::new();
        for (program, hook) in HOOKS {
            // On failure the links attached so far drop, and detach: a
            // half-attached interface would filter one direction only.
            owned.push(attach_link(&mut self.ebpf, interface, program, hook)?);
        }
        info!(interface, ifindex, "attached");
        let Some(pins) = &self.pins else {
            return Ok(Links::Owned(owned));
        };
        let mut pinned = Vec::new();
        for ((program, _), link) in HOOKS.into_iter().zip(owned) {
            let link = FdLink::try_from(link).map_err(|source| PinError::Link {
                path: pins.link_path(ifindex, program),
                source,
            })?;
            let link = link
                .pin(pins.link_path(ifindex, program))
                .map_err(|source| DatapathError::Pin {
                    interface: interface.to_owned(),
                    source,
                })?;
            pinned.push(link);
        }
        Ok(Links::Pinned(pinned))
    }

    /// Detaches from `interface` (unpinning its links); a vanished interface
    /// took its links with it.
    fn detach(&mut self, interface: &str) {
        let Some(attachment) = self.attached.remove(interface) else {
            return;
        };
        match attachment.links {
            Links::Owned(links) => drop(links),
            Links::Pinned(links) => {
                for link in links {
                    if let Err(error) = link.unpin() {
                        warn!(interface, %error, "unpin");
                    }
                }
            }
            Links::Inherited => {
                if let Some(pins) = &self.pins
                    && let Err(error) = pins.unpin(attachment.ifindex)
                {
                    warn!(interface, error = %anyhow::Error::from(error), "unpin");
                }
            }
        }
        info!(interface, "detached");
    }
}

impl Datapath {
    /// See [`Attachments::attach`].
    pub fn attach(&self, interface: &str, ifindex: u32) -> Result<(), DatapathError> {
        locked(&self.attachments).attach(interface, ifindex)
    }

    /// The interfaces the programs are attached to, with their ifindex.
    pub fn attached(&self) -> Vec<(String, u32)> {
        locked(&self.attachments)
            .attached()
            .map(|(name, ifindex)| (name.to_owned(), ifindex))
            .collect()
    }

    /// See [`Attachments::detach`].
    pub fn detach(&self, interface: &str) {
        locked(&self.attachments).detach(interface);
    }

    /// Swaps this daemon's programs into the links a previous daemon pinned.
    /// Call after the first publication, so that the swap changes nothing a
    /// packet would notice.
    pub fn take_over(&mut self) -> Result<(), DatapathError> {
        let mut attachments = locked(&self.attachments);
        let Some(pins) = attachments.pins.clone() else {
            return Ok(());
        };
        let inherited = attachments
            .attached
            .values()
            .any(|a| matches!(a.links, Links::Inherited));
        if inherited {
            // Right before the swap, so that connections the old programs
            // admitted until now survive it. Without them the swap still
            // happens: the old programs would otherwise enforce a stale
            // policy for good, and a connection without its entry is
            // judged from its next packet (a TCP one is denied: fail closed).
            if let Err(error) = pins.hand_over_conntrack(&mut self.remembered) {
                error!(
                    error = format!("{:#}", anyhow::Error::from(error)),
                    "the previous daemon's connections are not handed over"
                );
            }
        }
        let Attachments { ebpf, attached, .. } = &mut *attachments;
        for (interface, attachment) in attached {
            if !matches!(attachment.links, Links::Inherited) {
                continue;
            }
            let mut pinned = Vec::new();
            for (program, _) in HOOKS {
                let path = pins.link_path(attachment.ifindex, program);
                let failed = |source| PinError::Link {
                    path: path.clone(),
                    source,
                };
                let link = SchedClassifierLink::try_from(FdLink::from(
                    PinnedLink::from_pin(&path).map_err(failed)?,
                ))
                .map_err(failed)?;
                let classifier = classifier(ebpf, program)?;
                let id =
                    classifier
                        .attach_to_link(link)
                        .map_err(|source| DatapathError::Attach {
                            interface: interface.clone(),
                            source,
                        })?;
                // The program no longer needs the link: the pin holds it.
                drop(classifier.take_link(id));
                pinned.push(PinnedLink::from_pin(&path).map_err(failed)?);
            }
            info!(interface, "took over from the previous daemon");
            attachment.links = Links::Pinned(pinned);
        }
        Ok(())
    }

    /// Unpins links a previous daemon left on interfaces that are gone:
    /// pinned, neither `live` nor attached (the link thread may have
    /// attached and pinned an interface newer than `live`; an attached
    /// interface's pins go when it is detached).
    pub fn sweep_stale_pins(&self, live: &[u32]) -> Result<(), DatapathError> {
        let attachments = locked(&self.attachments);
        if let Some(pins) = &attachments.pins {
            let attached: Vec<u32> = attachments.attached().map(|(_, ifindex)| ifindex).collect();
            for ifindex in pins.pinned_ifindexes()? {
                if !live.contains(&ifindex) && !attached.contains(&ifindex) {
                    pins.unpin(ifindex)?;
                }
            }
        }
        Ok(())
    }
}

fn attach_link(
    ebpf: &mut Ebpf,
    interface: &str,
    program: &'static str,
    hook: TcAttachType,
) -> Result<SchedClassifierLink, DatapathError> {
    let failed = |source| DatapathError::Attach {
        interface: interface.to_owned(),
        source,
    };
    let classifier = classifier(ebpf, program)?;
    let id = classifier
        .attach_with_options(
            interface,
            hook,
            TcAttachOptions::TcxOrder(Default::default()),
        )
        .map_err(failed)?;
    classifier.take_link(id).map_err(failed)
}
