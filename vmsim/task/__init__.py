"""Threads and what runs them: the parts of kernel/ (sched, signal, futex, exit, fork)
that `vmsim run` needs to execute real programs on the model, over the Process (the
thread group: one mm, one fd table) of vmsim.process."""
