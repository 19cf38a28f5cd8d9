"""Agreement: the oracle's own checks and the cross-check of every source's answer.

``verify`` checks each source's headers (proof of work, Bitcoin Core's retarget
rule, linkage); ``crosscheck`` (pure) turns all answers into Agreed, Disputed
or Insufficient; ``reorg`` classifies tip changes and orphaned retargets; the
``watcher`` drives the three per epoch from new-block events.
"""
