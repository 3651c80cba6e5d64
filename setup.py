from pathlib import Path

from setuptools import find_packages, setup

core = [l.strip() for l in Path(__file__).with_name("requirements.txt").read_text().splitlines()
        if l.strip() and not l.startswith("#") and not l.startswith(("streamlit", "pytest", "mtcnn", "selenium", "apache-beam"))]

setup(
    name="zoo",
    version="0.1.0",
    description="A Keras 3 / TensorFlow model zoo for transfer learning in computer vision",
    long_description=Path(__file__).with_name("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["zoo", "zoo.*", "recipes", "recipes.*"]),
    python_requires=">=3.10",
    install_requires=core,
    extras_require={
        "gpu": ["faiss-gpu"],
        "beam": ["apache-beam>=2.60"],  # zoo.index.build(engine="beam")
        "apps": ["streamlit>=1.40"],
        "faces": ["mtcnn"],
        "test": ["pytest>=8"],
    },
    entry_points={"console_scripts": ["zoo=recipes.cli:main"]},
    license="Apache-2.0",
)
