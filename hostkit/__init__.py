"""paintwire.hostkit: what the Krita and GIMP plug-ins do the same way.

Qt-free and GIMP-free, standard library plus paintwire.protocol, Python 3.10+;
vendored into both plug-in bundles beside the protocol. A host reads its
document into a :class:`~.snapshot.Snapshot`, lets the artist choose among
the modes and models the server offers (:mod:`.modes`) with a form built from
the server's parameter specs (:mod:`.form`), sends :func:`.request.build_request`,
shows :func:`.status.event_text`, and writes the :class:`~.placement.Placement`
that :func:`.placement.place_result` decides. What only one host does stays in
that host's plug-in.

Modules: modes (mode and model choice), form (the settings form as data),
snapshot (document pixels and masks in 8-bit form), request (job settings and
requests), placement (result layers: names, positions, where they go),
history (finished jobs), status (event and error text, timeouts), sources
(where input pixels come from), controls (control layers: the list, its checks,
and job.controls at the job's region), live (live painting: the region, band
reads, when a state is worth sending, the newest frame).
"""
