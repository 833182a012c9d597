"""The maze2d point-mass MJCF (D4RL maze_model.point_maze) and its MuJoCo >= 3 corrections."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._deps import require
from .layouts import MazeLayout, get_layout

if TYPE_CHECKING:
    import mujoco

TIMESTEP = 0.01
RADIUS = 0.1
DENSITY = 1000.0
GEAR = 100.0
DAMPING = 1.0
# Ball mass from its density, exactly as MuJoCo computes it (do not round it).
MASS = 4.0 / 3.0 * math.pi * RADIUS**3 * DENSITY
# MuJoCo 2.1 took the max of the two geoms' margins (0.002); MuJoCo >= 3 adds them, so each geom gets half.
GEOM_MARGIN = 0.001
CONTACT_MARGIN = 2 * GEOM_MARGIN
BODY_OFFSET = 1.2  # particle body origin in world coordinates (x and y)
WALL_OFFSET = 1.0  # a wall of cell (w, h) is centred at world (w + 1, h + 1)
MAX_SPEED = 5.0  # D4RL clips each velocity component to +-5 before every step


def build_mjcf(maze: str | MazeLayout, offscreen: int = 1024) -> str:
    """The MJCF XML of D4RL's maze2d point mass for a layout, with a top-down camera for pictures."""
    layout = get_layout(maze)
    rows, cols = layout.shape
    walls = "\n".join(
        f'    <geom name="wall_{w}_{h}" type="box" material="wall" conaffinity="1" '
        f'pos="{w + WALL_OFFSET:.1f} {h + WALL_OFFSET:.1f} 0" size="0.5 0.5 0.2"/>'
        for w, h in layout.wall_cells
    )
    # Top-down camera over the maze centre: image right = +y (columns), image down = +x (rows). Its 45 degree
    # vertical field of view frames the rows exactly at the wall tops; an image of aspect cols:rows frames it all.
    cx, cy = (rows - 1) / 2 + WALL_OFFSET, (cols - 1) / 2 + WALL_OFFSET
    height = 0.5 * rows / math.tan(math.radians(22.5)) + 0.2
    return f"""<mujoco model="point_maze">
  <compiler inertiafromgeom="true" angle="radian"/>
  <option timestep="{TIMESTEP}" gravity="0 0 0" iterations="20" integrator="Euler"/>
  <default>
    <joint damping="{DAMPING:g}" limited="false"/>
    <geom friction=".5 .1 .1" density="{DENSITY:g}" margin="{GEOM_MARGIN}" condim="1" contype="2" conaffinity="1"/>
  </default>
  <asset>
    <texture type="2d" name="groundplane" builtin="checker" rgb1="0.2 0.3 0.4" rgb2="0.1 0.2 0.3"
             width="100" height="100"/>
    <material name="groundplane" texture="groundplane" texrepeat="20 20"/>
    <material name="wall" rgba=".7 .5 .3 1"/>
    <material name="target" rgba=".6 .3 .3 1"/>
  </asset>
  <visual>
    <headlight ambient=".4 .4 .4" diffuse=".8 .8 .8" specular="0.1 0.1 0.1"/>
    <map znear=".01"/>
    <global offwidth="{offscreen}" offheight="{offscreen}"/>
  </visual>
  <worldbody>
    <geom name="ground" size="40 40 0.25" pos="0 0 -0.1" type="plane" contype="1" conaffinity="0"
          material="groundplane"/>
    <body name="particle" pos="{BODY_OFFSET} {BODY_OFFSET} 0">
      <geom name="particle_geom" type="sphere" size="{RADIUS}" rgba="0.1 0.3 0.9 1" contype="1"/>
      <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
      <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
    </body>
    <site name="target_site" pos="0 0 0" size="0.2" material="target"/>
    <camera name="topdown" pos="{cx} {cy} {height:.4f}" xyaxes="0 1 0 -1 0 0"/>
{walls}
  </worldbody>
  <actuator>
    <motor joint="ball_x" ctrlrange="-1 1" ctrllimited="true" gear="{GEAR:g}"/>
    <motor joint="ball_y" ctrlrange="-1 1" ctrllimited="true" gear="{GEAR:g}"/>
  </actuator>
</mujoco>
"""


def load_model(maze: str | MazeLayout) -> mujoco.MjModel:
    """Compile the maze MJCF and apply the MuJoCo 2.1 constraint regulariser for the particle (2 / (3 m))."""
    mujoco = require("mujoco")
    model = mujoco.MjModel.from_xml_string(build_mjcf(maze))
    particle = model.body("particle").id
    mass = float(model.body_mass[particle])
    # MuJoCo 2.1 averaged the particle's translational inverse weight over x, y, z (the z row is empty: 2/(3m));
    # newer MuJoCo computes 1/m, which changes the contact regulariser and so every wall contact.
    model.body_invweight0[particle, 0] = 2.0 / (3.0 * mass)
    return model
