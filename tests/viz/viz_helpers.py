"""A graph small enough that its picture and gradients can be worked out by hand."""
import numpy as np

import tinyai as ta


def small_graph():
    """x0, x1 and y = (x0 + x1) * x1, so dy/dx0 = x1 and dy/dx1 = x0 + 2 x1."""
    x0 = ta.Variable(np.array([1.0, 2.0]), name="x0")
    x1 = ta.Variable(np.array([3.0, 4.0]), name="x1")
    y = (x0 + x1) * x1
    y.name = "y"
    return x0, x1, y
