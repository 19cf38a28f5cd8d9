"""Agreement: the oracle's own checks and the cross-check of every source's answer.

``verify`` checks each source's headers (proof of work, Bitcoin Core's retarget
rule, linkage, and through ``continuity`` that the header at 2016e-2016 is the
retarget already agreed or bundled for e-1); ``crosscheck`` (pure) turns all
answers into Agreed, Disputed or Insufficient; ``reorg`` classifies tip changes
and orphaned retargets and picks the effective tip (the quorum-th highest); the
``watcher`` drives them per epoch from new-block events.
"""
