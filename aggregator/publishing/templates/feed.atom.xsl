<?xml version="1.0" encoding="UTF-8"?>
<!-- Renders feed.atom readably when opened in a browser (referenced by its xml-stylesheet PI).
     The summary is HTML escaped in the feed: disable-output-escaping puts it back as HTML
     (Chromium honours it; a browser that does not shows the markup as text). The summary
     already lists the original title, the translation state and the sources with their
     evidence, so they are not repeated from the related links. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:media="http://search.yahoo.com/mrss/"
    exclude-result-prefixes="atom media">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/atom:feed">
    <html lang="{@xml:lang}">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="atom:title"/> (Atom feed)</title>
        <style>
          :root { color-scheme: light dark; }
          body { margin: 0 auto; max-width: 60rem; padding: 1rem; font: 16px/1.55 system-ui, "Hiragino Sans", "Noto Sans JP", sans-serif; }
          .note { background: #fff6d6; color: #333; border-radius: .4rem; padding: .6rem 1rem; }
          article { border-bottom: 1px solid #8884; padding: .5rem 0 1rem; overflow-wrap: anywhere; }
          h2 { font-size: 1.15rem; margin: .5rem 0 .2rem; }
          .meta, .original-title, .translation-status, small { color: #777; font-size: .9rem; }
          .meta { margin: 0; }
          img { max-width: 100%; height: auto; }
          .thumb { display: block; max-height: 16rem; object-fit: cover; border-radius: .35rem; margin: .5rem 0; }
        </style>
      </head>
      <body>
        <header>
          <h1><a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a></h1>
          <p><xsl:value-of select="atom:subtitle"/></p>
          <p class="note">This is an Atom feed. Subscribe by copying its address into your feed reader:
            <code><xsl:value-of select="atom:link[@rel='self']/@href"/></code></p>
        </header>
        <main>
          <xsl:apply-templates select="atom:entry"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article lang="{@xml:lang}" data-id="{atom:id}">
      <h2 class="title">
        <xsl:choose>
          <xsl:when test="atom:link[@rel='alternate']">
            <a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a>
          </xsl:when>
          <xsl:otherwise><xsl:value-of select="atom:title"/></xsl:otherwise>
        </xsl:choose>
      </h2>
      <p class="meta">
        <xsl:value-of select="atom:author/atom:name"/>
        <xsl:text> · </xsl:text>
        <time datetime="{atom:published}">
          <xsl:value-of select="concat(substring(atom:published, 1, 10), ' ', substring(atom:published, 12, 5), ' UTC')"/>
        </time>
        <xsl:if test="atom:updated != atom:published">
          <xsl:text> · updated </xsl:text>
          <time datetime="{atom:updated}">
            <xsl:value-of select="concat(substring(atom:updated, 1, 10), ' ', substring(atom:updated, 12, 5), ' UTC')"/>
          </time>
        </xsl:if>
        <xsl:for-each select="atom:category">
          <xsl:text> · </xsl:text><span class="category"><xsl:value-of select="@term"/></span>
        </xsl:for-each>
      </p>
      <xsl:if test="media:thumbnail/@url">
        <img class="thumb" src="{media:thumbnail/@url}" alt="" loading="lazy"/>
      </xsl:if>
      <div class="summary">
        <xsl:value-of select="atom:summary" disable-output-escaping="yes"/>
      </div>
    </article>
  </xsl:template>
</xsl:stylesheet>
