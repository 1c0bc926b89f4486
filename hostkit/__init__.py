"""paintwire.hostkit: what the Krita and GIMP plug-ins do the same way.

Qt-free and GIMP-free, standard library plus paintwire.protocol, Python 3.10+;
vendored into both plug-in bundles beside the protocol (memory_document, which
needs numpy, is left out). A host is an adapter: it implements
:class:`~.document.Document` (and :class:`~.document.Canvas` for writing) over
its application, lets the artist choose among the modes and models the server
offers (:mod:`.modes`) with a form built from the server's parameter specs
(:mod:`.form`), and runs each job with :mod:`.job_flow`: plan, read only what
the job reads, request, submit, previews, placement, history. What only one
host does stays in that host's plug-in. docs/new-host.md says how to write one.

Modules: document (the Document and Canvas protocols, and write_placement:
where a result goes), job_flow (one job's steps, and run_job for a host that
can block), memory_document (a document in numpy arrays: the tests' host),
modes (mode and model choice), form (the settings form as data),
snapshot (document pixels and masks in 8-bit form), request (job settings and
requests), placement (result layers: names, positions, where they go),
history (finished jobs), status (event and error text, timeouts), sources
(where input pixels come from), controls (control layers: the list, its checks,
and job.controls at the job's region), live (live painting: the region, band
reads, when a state is worth sending, the newest frame).
"""
