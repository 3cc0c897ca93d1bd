"""A small second assignment (a softmax over rows, one head of attention): the kit grades any folder like this."""
