"""Content analysis on top of the crawl: tables derived in Postgres, partitioned by group."""

from vk_pipeline.assets.analysis.assets import AnalysisConfig, analysis
from vk_pipeline.assets.analysis.build import ANALYSIS_TABLES

analysis_assets = [analysis]

__all__ = ["ANALYSIS_TABLES", "AnalysisConfig", "analysis", "analysis_assets"]
