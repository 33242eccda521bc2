"""The funnel measured as served: ``pinrec eval-funnel`` (:mod:`.funnel`, :mod:`.replay`)."""
