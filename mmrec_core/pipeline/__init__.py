"""Stage orchestration: the whole pipeline of a data set, its status, and running it in order."""
