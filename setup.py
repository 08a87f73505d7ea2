"""ament_python package ``inspatio_ros``; the ROS-free core also installs with plain pip."""
from glob import glob

from setuptools import find_packages, setup

package_name = "inspatio_ros"

ROS_WHEELS = [f"ros-jazzy-{name}" for name in (
    "rclpy", "rmw-fastrtps-cpp", "std-msgs", "std-srvs", "sensor-msgs", "geometry-msgs", "nav-msgs",
    "rosgraph-msgs", "diagnostic-msgs", "rosidl-adapter")]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    package_data={package_name: ["trajectories/*.txt", "ros/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.py")),
        (f"share/{package_name}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "torch>=2.4",
        "safetensors>=0.4",
        "av>=11",
        "pillow>=9",
        "pyyaml>=6",
        "tqdm>=4.60",
        "cyclonedds>=0.10",
        "rosbags>=0.10",        # rosbag2 (MCAP / SQLite) input without a ROS install
        "opencv-python-headless>=4.8",      # visual odometry: corners, optical flow, PnP (4.x and 5.x)
        "numba>=0.59",          # the renderer's CPU kernels (render/cpu.py)
    ],
    extras_require={
        # ROS 2 Jazzy's rclpy and message packages as wheels (for the rclpy transport without a ROS
        # install, and for the tests, which talk to the node through a real rclpy node).
        "ros": ROS_WHEELS,
        # inspatio_ros.gym: the Gymnasium environment (agents/gym_env.py).
        "gym": ["gymnasium>=1.1"],
        # Agents and scale-out: the Gymnasium environment, scenario sweeps and build-many on Ray.
        "agents": ["ray[client]>=2.9", "gymnasium>=1.1", "pyarrow>=14"],     # [client]: --address ray://HOST:10001; pyarrow: results.parquet
        # The Gaussian layer on CUDA (optimize, and the node/render/eval drawing it): gsplat's
        # kernels, compiled on first use by the machine's nvcc (inspatio_ros/gaussians/backend.py).
        "gpu": ["gsplat==1.5.3"],
        # The live view in Foxglove (inspatio-ros run --foxglove): a Foxglove WebSocket server.
        "foxglove": ["foxglove-sdk>=0.30,<0.31"],
        "test": ["pytest>=7", "gymnasium>=1.1", "ray>=2.9", "pyarrow>=14", "foxglove-sdk>=0.30,<0.31", *ROS_WHEELS],
    },
    zip_safe=True,
    maintainer="inspatio_ros developers",
    maintainer_email="inspatio-ros@example.org",
    description="A recorded driving or robot video as an explorable 4D world, and a ROS 2 sensor simulator on it.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={"console_scripts": [
        "inspatio-ros = inspatio_ros.cli:main",
        # `ros2 run inspatio_ros sim_node --ros-args --params-file FILE` (rclpy transport)
        "sim_node = inspatio_ros.ros.run_cli:ros_main",
    ]},
)
